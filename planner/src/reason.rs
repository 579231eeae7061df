//! Why a container must be recreated, in the user's words: the first field
//! whose value differs between the old and the new configuration.

use serde_json::Value;

/// The dotted path of the first difference between `old` and `new`, such as
/// `environment.FOO` or `ports[1]`, or `None` when they are equal.
pub fn first_difference(old: &Value, new: &Value) -> Option<String> {
    fn walk(old: &Value, new: &Value, path: &mut String) -> bool {
        match (old, new) {
            (Value::Object(a), Value::Object(b)) => {
                let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
                keys.sort();
                keys.dedup();
                for k in keys {
                    let (x, y) = (a.get(k), b.get(k));
                    if x == y {
                        continue;
                    }
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(k);
                    if let (Some(x), Some(y)) = (x, y) {
                        walk(x, y, path);
                    }
                    return true;
                }
                false
            }
            (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
                for (i, (x, y)) in a.iter().zip(b).enumerate() {
                    if x != y {
                        path.push_str(&format!("[{i}]"));
                        walk(x, y, path);
                        return true;
                    }
                }
                false
            }
            _ => old != new,
        }
    }
    let mut path = String::new();
    if walk(old, new, &mut path) {
        Some(path)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_the_changed_field() {
        let a = json!({"image": "x", "environment": {"A": "1", "B": "2"}, "ports": [1, 2]});
        let b = json!({"image": "x", "environment": {"A": "1", "B": "3"}, "ports": [1, 2]});
        assert_eq!(first_difference(&a, &b).as_deref(), Some("environment.B"));
        let c = json!({"image": "x", "environment": {"A": "1", "B": "2"}, "ports": [1, 5]});
        assert_eq!(first_difference(&a, &c).as_deref(), Some("ports[1]"));
        let d = json!({"image": "y", "environment": {"A": "1", "B": "2"}, "ports": [1, 2]});
        assert_eq!(first_difference(&a, &d).as_deref(), Some("image"));
        assert_eq!(first_difference(&a, &a), None);
    }
}
