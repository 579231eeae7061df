//! The examples in `examples/`, brought up and checked as a user would.

use crate::network::Netns;
use crate::sandbox::Dir;

#[test]
fn quickstart_answers_by_service_name_and_keeps_its_count_across_down_and_up() {
    let d = Dir::new("quickstart");
    let ns = Netns::new();
    ns.sh("ip link set lo up");
    let root = crate::container::busybox_root(&d);
    ns.berth(
        &d,
        &root,
        &[
            "image",
            "tag",
            "localhost/busybox-test:latest",
            "localhost/berth-busybox:latest",
        ],
    )
    .ok();
    let file =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart/compose.yaml");
    let file = file.to_string_lossy().into_owned();
    let up = |ns: &Netns| ns.berth(&d, &root, &["-f", &file, "up", "-d"]).ok();
    let fetch = |ns: &Netns| {
        let mut last = String::new();
        for _ in 0..50 {
            last = ns.sh("wget -qO- http://127.0.0.1:8080/cgi-bin/index.cgi");
            // Until the API is up, the web answers with an empty count.
            if last.trim_end().ends_with(|c: char| c.is_ascii_digit()) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        last
    };
    up(&ns);
    assert_eq!(fetch(&ns), "hello from web; api says: 1\n");
    assert_eq!(fetch(&ns), "hello from web; api says: 2\n");
    ns.berth(&d, &root, &["-f", &file, "down"]).ok();
    up(&ns);
    assert_eq!(
        fetch(&ns),
        "hello from web; api says: 3\n",
        "the count survived down and up"
    );
    ns.berth(&d, &root, &["-f", &file, "down", "-v"]).ok();
    up(&ns);
    assert_eq!(
        fetch(&ns),
        "hello from web; api says: 1\n",
        "down -v took the count"
    );
    ns.berth(&d, &root, &["-f", &file, "down", "-v"]).ok();
    assert_eq!(ns.sh("ip -o link show type bridge"), "");
    assert_eq!(ns.sh("nft list tables"), "");
}
