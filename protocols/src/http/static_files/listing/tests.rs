use super::*;

use crate::http::static_files::test_support::TempDir;

/// (input, percent-encoded)
const ENCODE_CASES: &[(&str, &str)] = &[
    ("plain-name_1.txt~", "plain-name_1.txt~"),
    ("a b", "a%20b"),
    ("a\"b", "a%22b"),
    ("<script>", "%3Cscript%3E"),
    ("javascript:alert(1)", "javascript%3Aalert%281%29"),
    ("100%", "100%25"),
    ("q?x#y&z", "q%3Fx%23y%26z"),
    ("\u{e9}", "%C3%A9"),
    ("'", "%27"),
];

#[test]
fn percent_encodes_outside_unreserved() {
    for &(input, want) in ENCODE_CASES {
        assert_eq!(percent_encode(input.as_bytes()), want, "{input:?}");
    }
}

/// (input, escaped)
const ESCAPE_CASES: &[(&str, &str)] = &[
    ("plain", "plain"),
    (
        "<script>alert(1)</script>",
        "&lt;script&gt;alert(1)&lt;/script&gt;",
    ),
    ("a&b", "a&amp;b"),
    ("\"'", "&quot;&#39;"),
    ("\u{e9}t\u{e9}", "\u{e9}t\u{e9}"),
];

#[test]
fn html_escapes_text() {
    for &(input, want) in ESCAPE_CASES {
        assert_eq!(html_escape(input), want, "{input:?}");
    }
}

#[test]
fn renders_sorted_entries_with_slashes_and_sizes() {
    let mut entries = vec![
        DirEntryInfo::new("zeta.txt", false, 12),
        DirEntryInfo::new("alpha", true, 0),
        DirEntryInfo::new("Beta.md", false, 3),
    ];
    let page = render_listing("/docs/", &mut entries);
    let names: Vec<&str> = entries.iter().map(|e| e.name.to_str().unwrap()).collect();
    assert_eq!(names, ["Beta.md", "alpha", "zeta.txt"]);
    assert!(page.contains("<title>Index of /docs/</title>"));
    assert!(page.contains("<a href=\"../\">../</a>"));
    let beta = page
        .find("href=\"Beta.md\">Beta.md</a></td><td>3<")
        .unwrap();
    let alpha = page.find("href=\"alpha/\">alpha/</a></td><td>-<").unwrap();
    let zeta = page
        .find("href=\"zeta.txt\">zeta.txt</a></td><td>12<")
        .unwrap();
    assert!(beta < alpha && alpha < zeta);
}

#[test]
fn root_listing_has_no_parent_link() {
    let page = render_listing("/", &mut []);
    assert!(!page.contains("../"));
    assert!(page.contains("<h1>Index of /</h1>"));
}

#[test]
fn hostile_names_are_escaped_and_encoded() {
    let mut entries = vec![
        DirEntryInfo::new("<script>alert(1)</script>", false, 1),
        DirEntryInfo::new("x\" onmouseover=\"alert(1)", false, 1),
        DirEntryInfo::new("javascript:alert(1)", false, 1),
    ];
    let page = render_listing("/<b>&\"/", &mut entries);
    assert!(!page.contains("<script>"));
    assert!(!page.contains("<b>"));
    assert!(page.contains("Index of /&lt;b&gt;&amp;&quot;/"));
    assert!(page.contains(
        "href=\"%3Cscript%3Ealert%281%29%3C%2Fscript%3E\">&lt;script&gt;alert(1)&lt;/script&gt;</a>"
    ));
    assert!(page.contains(
        "href=\"x%22%20onmouseover%3D%22alert%281%29\">x&quot; onmouseover=&quot;alert(1)</a>"
    ));
    assert!(page.contains("href=\"javascript%3Aalert%281%29\""));
    // No attribute is closed early: every href value is followed by `">`.
    for part in page.split("href=\"").skip(1) {
        let end = part.find('"').unwrap();
        assert_eq!(&part[end..end + 2], "\">", "{part}");
    }
}

#[cfg(unix)]
#[test]
fn non_utf8_names_encode_their_bytes() {
    use std::os::unix::ffi::OsStringExt;

    let mut entries = vec![DirEntryInfo::new(
        OsString::from_vec(b"a\xffb".to_vec()),
        false,
        0,
    )];
    let page = render_listing("/", &mut entries);
    assert!(page.contains("href=\"a%FFb\">a\u{fffd}b</a>"));
}

#[test]
fn reads_a_directory() {
    let tmp = TempDir::new("listing");
    tmp.file("b.txt", b"hello");
    tmp.dir("sub");
    tmp.file(".hidden", b"");
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("sub", tmp.path().join("link-to-sub")).unwrap();
        std::os::unix::fs::symlink("nowhere", tmp.path().join("dangling")).unwrap();
    }
    let mut got = read_listing(tmp.path()).unwrap();
    got.sort_by(|a, b| a.name.cmp(&b.name));
    let mut want = vec![
        DirEntryInfo::new(".hidden", false, 0),
        DirEntryInfo::new("b.txt", false, 5),
        DirEntryInfo::new("sub", true, 0),
    ];
    #[cfg(unix)]
    want.push(DirEntryInfo::new("link-to-sub", true, 0));
    want.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(got, want);
    assert_eq!(
        read_listing(&tmp.path().join("missing"))
            .unwrap_err()
            .kind(),
        io::ErrorKind::NotFound
    );
}

#[test]
fn read_listing_is_capped() {
    let tmp = TempDir::new("listing-cap");
    for i in 0..MAX_LISTING_ENTRIES + 5 {
        std::fs::write(tmp.path().join(i.to_string()), b"").unwrap();
    }
    assert_eq!(read_listing(tmp.path()).unwrap().len(), MAX_LISTING_ENTRIES);
}
