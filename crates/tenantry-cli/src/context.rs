//! Opening the database a command runs on, and the `Tenantry` handle over it.

use tenantry::batch::Config;
use tenantry::{Database, Tenantry};

use crate::exit::{Failure, PROBLEMS, UNAVAILABLE, USAGE};

/// The file of an SQLite URL (`sqlite:PATH`, `sqlite://PATH`, options after `?` left out).
fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    Some(rest.split('?').next().unwrap_or(rest))
}

/// Connects to the database. Only `migrate` may create a missing SQLite file: every other
/// command would otherwise answer from an empty database it just made.
pub(crate) async fn connect(url: Option<&str>, create: bool) -> Result<Database, Failure> {
    let url = url.ok_or_else(|| {
        Failure::new(
            USAGE,
            "no database: pass --database URL or set DATABASE_URL",
        )
    })?;
    if let Some(path) = sqlite_path(url)
        && !create
        && !std::path::Path::new(path).exists()
    {
        return Err(Failure::new(
            UNAVAILABLE,
            format!("no SQLite database at {path} (create it with `tenantry migrate`)"),
        ));
    }
    Ok(Database::connect(url).await?)
}

/// What is wrong with the schema, if anything, in one line per component.
pub(crate) fn schema_problems(status: &[tenantry_core::migrate::ComponentStatus]) -> Vec<String> {
    status
        .iter()
        .filter(|s| !s.is_current())
        .map(|s| {
            if s.applied > s.shipped {
                format!(
                    "{}: the database is at version {}, newer than the {} this binary knows",
                    s.component, s.applied, s.shipped
                )
            } else if !s.edited.is_empty() {
                format!(
                    "{}: applied migrations {:?} were edited",
                    s.component, s.edited
                )
            } else {
                let pending: Vec<String> = s
                    .pending
                    .iter()
                    .map(|(v, name)| format!("{v} ({name})"))
                    .collect();
                format!("{}: pending {}", s.component, pending.join(", "))
            }
        })
        .collect()
}

/// The handle over a database whose schema is current. A command never migrates behind the
/// operator's back: a schema that is not current stops it with [`PROBLEMS`].
pub(crate) async fn handle(db: Database) -> Result<Tenantry, Failure> {
    let problems = schema_problems(&db.schema_status().await?);
    if !problems.is_empty() {
        return Err(Failure::new(
            PROBLEMS,
            format!(
                "the schema is not current ({}): run `tenantry migrate`",
                problems.join("; ")
            ),
        ));
    }
    // No API call is made by any command; a key is only needed to build the client.
    let mut api =
        Config::new(std::env::var("ANTHROPIC_API_KEY").unwrap_or_else(|_| "unused".into()));
    if let Ok(base) = std::env::var("ANTHROPIC_BASE_URL") {
        api = api.base_url(base);
    }
    Ok(Tenantry::builder()
        .database_pool(db)
        .api(api)
        .build()
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(sqlite_path("sqlite:app.db"), Some("app.db"));
        assert_eq!(
            sqlite_path("sqlite:///tmp/app.db?mode=rwc"),
            Some("/tmp/app.db")
        );
        assert_eq!(sqlite_path("postgres://localhost/app"), None);
    }
}
