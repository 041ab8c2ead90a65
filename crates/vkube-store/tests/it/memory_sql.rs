//! The conformance suite's look around the store, for the memory store:
//! the SQL the tests run against a SQLite file or PostgreSQL, answered
//! from `MemoryStore::dump` (tables and columns named as in the schema)
//! and written with `MemoryStore::write_raw_secret`. Only the statement
//! shapes the suite uses are understood; any other panics, naming it, so
//! a new test states its memory equivalent here.

use serde_json::Value;
use vkube_store::MemoryStore;

/// `SELECT <column | COUNT(*)> FROM <table> [WHERE <column> = '<text>']`:
/// the first column of each matching row, as text.
pub fn select(dump: &Value, sql: &str) -> Vec<String> {
    let words: Vec<&str> = sql.split_whitespace().collect();
    let (column, table, filter) = match words[..] {
        ["SELECT", column, "FROM", table] => (column, table, None),
        ["SELECT", column, "FROM", table, "WHERE", key, "=", value] => {
            (column, table, Some((key, quoted(value, sql))))
        }
        _ => unknown(sql),
    };
    let rows: Vec<&Value> = dump[table]
        .as_array()
        .unwrap_or_else(|| panic!("the memory store has no table `{table}`: {sql}"))
        .iter()
        .filter(|row| filter.is_none_or(|(key, value)| row[key].as_str() == Some(value)))
        .collect();
    if column == "COUNT(*)" {
        return vec![rows.len().to_string()];
    }
    rows.iter().map(|row| text(&row[column])).collect()
}

/// The statements the suite writes around the store with.
pub fn execute(store: &MemoryStore, sql: &str) {
    let sql = sql.trim();
    if sql == "UPDATE ip_pools SET low_water_key = NULL" {
        // The SQL stores' search hint has no counterpart in memory: the
        // test's point (allocation still lowest first) holds as it is.
        return;
    }
    // A value copied from another row:
    // UPDATE cluster_secrets SET value = (<select>) WHERE cluster = '<name>'
    if let Some(rest) = sql.strip_prefix("UPDATE cluster_secrets SET value = (") {
        let (inner, filter) = rest
            .split_once(") WHERE cluster = ")
            .unwrap_or_else(|| unknown(sql));
        let values = select(&store.dump(), inner);
        let [value] = &values[..] else {
            panic!("`{inner}` gave {values:?}, not one value");
        };
        let cluster = quoted(filter, sql);
        for name in select(
            &store.dump(),
            &format!("SELECT name FROM cluster_secrets WHERE cluster = '{cluster}'"),
        ) {
            store.write_raw_secret(cluster, &name, value).unwrap();
        }
        return;
    }
    // A row as an older version wrote it:
    // INSERT INTO cluster_secrets (cluster, name, value) VALUES ('<c>', '<n>', '<v>')
    if let Some(values) =
        sql.strip_prefix("INSERT INTO cluster_secrets (cluster, name, value) VALUES (")
    {
        let values: Vec<&str> = values
            .strip_suffix(')')
            .unwrap_or_else(|| unknown(sql))
            .split(", ")
            .map(|value| quoted(value, sql))
            .collect();
        let [cluster, name, value] = values[..] else {
            unknown(sql)
        };
        store.write_raw_secret(cluster, name, value).unwrap();
        return;
    }
    unknown(sql)
}

/// `'text'` without its quotes.
fn quoted<'a>(value: &'a str, sql: &str) -> &'a str {
    value
        .strip_prefix('\'')
        .and_then(|value| value.strip_suffix('\''))
        .unwrap_or_else(|| unknown(sql))
}

/// A column's value as the SQL helpers print it.
fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => "NULL".into(),
        other => other.to_string(),
    }
}

fn unknown(sql: &str) -> ! {
    panic!("no memory-store equivalent of `{sql}`: add one to tests/it/memory_sql.rs")
}
