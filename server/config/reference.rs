//! `witness config reference`: every key, its default and its meaning, read
//! from the config types themselves (their JSON Schema, which `schemars`
//! derives from the fields, their serde defaults and their doc comments).
//! The book's configuration page embeds this output, and a test keeps the
//! two equal.

use serde_json::{Map, Value};

/// The reference as Markdown: a table per section, in the file's order.
pub fn reference() -> String {
    let schema = schemars::schema_for!(super::Config);
    let root = schema.as_value();
    let defs = root
        .get("$defs")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut out = String::new();
    let mut sections = Vec::new();
    let mut top = Vec::new();
    for (key, prop) in properties(root) {
        let target = resolve(prop, &defs);
        if let Some(item) = table_of(target, &defs) {
            sections.push((format!("[{key}]"), prop, item));
        } else if let Some(item) = target
            .get("items")
            .map(|i| resolve(i, &defs))
            .filter(|i| i.get("properties").is_some())
        {
            sections.push((format!("[[{key}]]"), prop, item));
        } else {
            top.push(row(key, prop, target, false));
        }
    }
    section(&mut out, "Top level", None, &top);
    for (name, prop, table) in sections {
        let required = required(table);
        let rows: Vec<String> = properties(table)
            .map(|(k, p)| row(k, p, resolve(p, &defs), required.contains(&k)))
            .collect();
        let about = description(prop).or_else(|| description(table));
        section(&mut out, &format!("`{name}`"), about, &rows);
    }
    out
}

fn section(out: &mut String, title: &str, about: Option<String>, rows: &[String]) {
    out.push_str(&format!("### {title}\n\n"));
    if let Some(about) = about {
        out.push_str(&about);
        out.push_str("\n\n");
    }
    out.push_str("| key | default | meaning |\n|---|---|---|\n");
    for r in rows {
        out.push_str(r);
        out.push('\n');
    }
    out.push('\n');
}

fn row(key: &str, prop: &Value, target: &Value, required: bool) -> String {
    let default = match prop.get("default") {
        Some(v) => shown_default(v),
        None if required => "required".to_string(),
        None => "none".to_string(),
    };
    let meaning = description(prop)
        .or_else(|| description(target))
        .unwrap_or_default();
    format!("| `{key}` | {default} | {} |", meaning.replace('|', "\\|"))
}

/// The object schema `v` stands for, when it is a table (a struct, or an
/// optional one).
fn table_of<'a>(v: &'a Value, defs: &'a Map<String, Value>) -> Option<&'a Value> {
    if v.get("properties").is_some() {
        return Some(v);
    }
    v.get("anyOf")
        .and_then(Value::as_array)?
        .iter()
        .map(|s| resolve(s, defs))
        .find(|s| s.get("properties").is_some())
}

fn resolve<'a>(v: &'a Value, defs: &'a Map<String, Value>) -> &'a Value {
    match v
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/$defs/"))
    {
        Some(name) => defs.get(name).unwrap_or(v),
        None => v,
    }
}

fn properties(v: &Value) -> impl Iterator<Item = (&str, &Value)> {
    v.get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v))
}

fn required(v: &Value) -> Vec<&str> {
    v.get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

/// A doc comment as one paragraph, without the section name it may start
/// with (the heading says it).
fn description(v: &Value) -> Option<String> {
    let d = v.get("description")?.as_str()?;
    let d = d.split_whitespace().collect::<Vec<_>>().join(" ");
    let d = match d.strip_prefix("`[") {
        Some(rest) => rest
            .split_once("]`")
            .map(|(_, after)| after.trim_start_matches([':', '.']).trim().to_string())
            .unwrap_or(d.clone()),
        None => d,
    };
    (!d.is_empty()).then(|| {
        let mut c = d.chars();
        c.next()
            .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
            .unwrap_or_default()
    })
}

/// A default as it would be written in TOML.
fn shown_default(v: &Value) -> String {
    match v {
        Value::Null => "none".to_string(),
        Value::Array(a) if a.is_empty() => "`[]`".to_string(),
        Value::Object(_) => "see below".to_string(),
        Value::String(s) => format!("`\"{s}\"`"),
        other => format!("`{other}`"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_section_and_some_keys_with_their_defaults() {
        let r = super::reference();
        for section in [
            "### Top level",
            "### `[store]`",
            "### `[[principals]]`",
            "### `[[policies]]`",
            "### `[[webhooks]]`",
            "### `[limits]`",
            "### `[http]`",
            "### `[tls]`",
        ] {
            assert!(r.contains(section), "{section} missing:\n{r}");
        }
        for row in [
            "| `listen` | `\"127.0.0.1:50051\"` |",
            "| `body_timeout` | `\"10s\"` |",
            "| `max_list_len` | `64` |",
            "| `name` | required |",
            "| `allowed_origins` | `[]` |",
        ] {
            assert!(r.contains(row), "{row} missing:\n{r}");
        }
    }
}
