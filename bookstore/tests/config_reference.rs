//! The configuration reference (docs/configuration.md) and the command table (docs/admin.md)
//! are the binaries' `--help`: every variable a binary reads is in a table with its flag and
//! default, every variable in the tables is one a binary reads, and every `bookstore` command
//! is in the command table. `auth-service`,
//! `books-service` and `gateway` share their settings with `bookstore
//! auth-service|books-service|gateway`, whose help is read here.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns, too

use std::collections::BTreeMap;

const BIN: &str = env!("CARGO_BIN_EXE_bookstore");
/// The configuration reference: its tables whose first column is a variable.
const CONFIGURATION: &str = include_str!("../../docs/configuration.md");
/// The admin guide, with the table of every `bookstore` command.
const COMMANDS: &str = include_str!("../../docs/admin.md");
/// Read by the binaries without being a flag.
const NOT_FLAGS: [&str; 4] = ["BOOKSTORE_ADMIN_PASSWORD", "RUST_LOG", "LOG_FORMAT", "OTEL_*"];

#[derive(Debug, Clone, PartialEq, Eq)]
struct Setting {
    flag: String,
    default: String,
}

/// Variable -> flag and default, from `--help` text.
fn settings_in_help(help: &str) -> BTreeMap<String, Setting> {
    let mut settings = BTreeMap::new();
    let mut flag = String::new();
    let mut env: Option<String> = None;
    let mut default = String::new();
    let mut flush = |flag: &str, env: &mut Option<String>, default: &mut String| {
        if let Some(name) = env.take() {
            settings.insert(name, Setting { flag: flag.to_owned(), default: std::mem::take(default) });
        }
        default.clear();
    };
    for line in help.lines() {
        let trimmed = line.trim_start();
        // An option's first line: `--name <VALUE>` or `-x, --name`, indented
        // by two to six spaces (examples are not options).
        let indent = line.len() - trimmed.len();
        if (2..=6).contains(&indent) && (trimmed.starts_with("--") || trimmed.get(2..5) == Some(", -")) {
            flush(&flag, &mut env, &mut default);
            flag = trimmed.split_whitespace().find(|word| word.starts_with("--")).unwrap().to_owned();
        }
        if let Some((_, rest)) = line.split_once("[env: ") {
            env = Some(rest.split(['=', ']']).next().unwrap().to_owned());
        }
        if let Some((_, rest)) = line.split_once("[default: ") {
            rest.split(']').next().unwrap().clone_into(&mut default);
        }
    }
    flush(&flag, &mut env, &mut default);
    settings
}

/// Variable -> flag and default, from the configuration reference's tables
/// whose first column is a variable.
fn settings_in_reference() -> BTreeMap<String, Setting> {
    let mut settings = BTreeMap::new();
    for line in CONFIGURATION.lines().filter(|line| line.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let unquote = |cell: &str| cell.trim_matches('`').to_owned();
        let name = unquote(cells[1]);
        let setting = Setting { flag: unquote(cells[2]), default: unquote(cells[3]) };
        assert!(settings.insert(name.clone(), setting).is_none(), "docs/configuration.md lists {name} twice");
    }
    settings
}

fn help(args: &[&str]) -> String {
    let output = std::process::Command::new(BIN).args(args).arg("--help").env_clear().output().unwrap();
    assert!(output.status.success(), "bookstore {args:?} --help failed");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn configuration_reference_tables_match_every_binarys_help() {
    let mut documented = settings_in_reference();
    let mut problems = Vec::new();
    for args in [&[][..], &["auth-service"], &["books-service"], &["gateway"]] {
        for (name, mut actual) in settings_in_help(&help(args)) {
            if name == "AUTH_MAX_CONCURRENT_HASHES" {
                let cores = std::thread::available_parallelism().unwrap().get().to_string();
                assert_eq!(actual.default, cores, "its default is the core count");
                "number of cores".clone_into(&mut actual.default);
            }
            match documented.get(&name) {
                None => {
                    problems.push(format!("{name} ({} {args:?}) is missing from the reference's tables", actual.flag));
                }
                Some(shown) if *shown != actual => {
                    problems.push(format!("{name}: docs/configuration.md shows {shown:?}, `--help` says {actual:?}"));
                }
                Some(_) => {}
            }
        }
    }
    for args in [&[][..], &["auth-service"], &["books-service"], &["gateway"]] {
        for name in settings_in_help(&help(args)).keys() {
            documented.remove(name);
        }
    }
    documented.retain(|name, _| !NOT_FLAGS.contains(&name.as_str()));
    for name in documented.keys() {
        problems.push(format!("{name} is in docs/configuration.md's tables but no binary reads it"));
    }
    assert!(
        problems.is_empty(),
        "docs/configuration.md, the configuration reference, is out of date:\n{}",
        problems.join("\n")
    );
}

#[test]
fn help_parsing_finds_flags_variables_and_defaults() {
    let help = "Options:\n      --listen-addr <LISTEN_ADDR>\n          Where [env: A_ADDR=] [default: 127.0.0.1:1]\n      \
                --url <URL>\n          A URL\n          \n          [env: A_URL]\n  -h, --help\n          Print help\n\n\
                Example:\n  bookstore x \\\n      --flag y\n";

    let settings = settings_in_help(help);

    assert_eq!(settings.len(), 2, "{settings:?}");
    assert_eq!(settings["A_ADDR"], Setting { flag: "--listen-addr".into(), default: "127.0.0.1:1".into() });
    assert_eq!(settings["A_URL"], Setting { flag: "--url".into(), default: String::new() });
}

/// The command names under `Commands:` in `--help` text.
fn commands_in_help(help: &str) -> Vec<String> {
    help.split("\nCommands:\n")
        .nth(1)
        .expect("the help lists commands")
        .lines()
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

#[test]
fn command_table_lists_every_bookstore_command() {
    let table: Vec<&str> = COMMANDS.lines().filter(|line| line.starts_with("| `")).collect();
    let commands = commands_in_help(&help(&[]));

    let missing: Vec<&String> = commands
        .iter()
        .filter(|name| {
            !table.iter().any(|row| {
                let first_cell = row.split('|').nth(1).unwrap_or_default();
                first_cell.contains(&format!("`{name}")) || first_cell.contains(&format!(" {name}`"))
            })
        })
        .collect();

    assert!(commands.len() >= 10, "{commands:?}");
    assert!(missing.is_empty(), "docs/admin.md's command table lacks {missing:?}");
}
