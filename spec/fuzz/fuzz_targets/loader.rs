//! Any text given as a compose file must load or fail with an error, never panic.
#![no_main]

use std::collections::BTreeMap;
use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env: BTreeMap<String, String> = [("HOME", "/nonexistent"), ("FOO", "bar")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut opts = berth_spec::Options::new(PathBuf::from("/nonexistent/berth-fuzz"), env);
    opts.files = vec![PathBuf::from("-")];
    opts.stdin = Some(text.to_string());
    if let Ok(loaded) = berth_spec::load(&opts) {
        let project = loaded.project.without_unused_resources();
        let _ = berth_spec::render::project_json(&project);
        let _ = berth_spec::render::project_yaml(&project);
    }
});
