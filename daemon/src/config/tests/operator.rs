//! Operator basics: which TLS directory slsd may create, and the log format.

use super::*;

#[test]
fn only_the_default_tls_dir_or_one_with_init_tls_may_be_created() {
    let c = Config::from_args(cli(&["--data-dir", "/d"])).unwrap();
    assert_eq!(c.tls_dir, PathBuf::from("/d/tls"));
    assert!(c.create_tls_dir, "the default is made on first start");
    let c = Config::from_args(cli(&["--tls-dir", "/t"])).unwrap();
    assert!(!c.create_tls_dir, "a directory given must exist");
    let c = Config::from_args(cli(&["--tls-dir", "/t", "--init-tls"])).unwrap();
    assert!(c.create_tls_dir);
    let c = with_file("tls_dir = \"/t\"\n", &[]).unwrap();
    assert!(!c.create_tls_dir, "from the file too");
    assert_eq!(c.tls_dir, PathBuf::from("/t"));
    assert!(
        with_file("tls_dir = \"/t\"\n", &["--init-tls"])
            .unwrap()
            .create_tls_dir
    );
    // An action of the command line only, like --repair.
    assert!(with_file("init_tls = true\n", &[]).is_err());
}

#[test]
fn the_log_format_is_text_unless_json_is_asked() {
    assert_eq!(
        Config::from_args(cli(&[])).unwrap().log_format,
        LogFormat::Text
    );
    let c = with_file("log_format = \"json\"\n", &[]).unwrap();
    assert_eq!(c.log_format, LogFormat::Json);
    let c = with_file("log_format = \"json\"\n", &["--log-format", "text"]).unwrap();
    assert_eq!(c.log_format, LogFormat::Text, "the flag wins");
    assert!(with_file("log_format = \"xml\"\n", &[]).is_err());
    assert!(Settings::try_parse_from(["slsd", "--log-format", "xml"]).is_err());
}
