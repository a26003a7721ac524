//! `tenantry migrate`: apply every component's pending migrations.

use serde_json::json;

use crate::cli::MigrateArgs;
use crate::context::{connect, schema_problems};
use crate::exit::{Failure, PROBLEMS};
use crate::output;

pub(crate) async fn run(
    url: Option<&str>,
    args: &MigrateArgs,
    as_json: bool,
) -> Result<(), Failure> {
    let db = connect(url, !args.dry_run).await?;
    if args.dry_run {
        let status = db.schema_status().await?;
        let pending: Vec<serde_json::Value> = status
            .iter()
            .flat_map(|s| {
                s.pending
                    .iter()
                    .map(|(v, name)| json!({"component": s.component, "version": v, "name": name}))
            })
            .collect();
        if as_json {
            output::json(&json!({"pending": pending}));
        } else if pending.is_empty() {
            println!("nothing to apply: the schema is current");
        } else {
            let mut table = output::Table::new(vec!["component", "version", "name"]);
            for s in &status {
                for (v, name) in &s.pending {
                    table.row(vec![
                        s.component.to_owned(),
                        v.to_string(),
                        (*name).to_owned(),
                    ]);
                }
            }
            table.print();
        }
        // Edited or newer schemas are refused by a real run too: say so now.
        let problems: Vec<String> = schema_problems(&status)
            .into_iter()
            .filter(|p| !p.contains(": pending "))
            .collect();
        if !problems.is_empty() {
            return Err(Failure::new(PROBLEMS, problems.join("; ")));
        }
        return Ok(());
    }
    let applied = db.migrate().await?;
    if as_json {
        let applied: Vec<serde_json::Value> = applied
            .iter()
            .map(|m| json!({"component": m.component, "version": m.version, "name": m.name}))
            .collect();
        output::json(&json!({"applied": applied}));
    } else if applied.is_empty() {
        println!("nothing to apply: the schema is current");
    } else {
        let mut table = output::Table::new(vec!["component", "version", "name"]);
        for m in &applied {
            table.row(vec![
                m.component.to_owned(),
                m.version.to_string(),
                m.name.to_owned(),
            ]);
        }
        table.print();
    }
    Ok(())
}
