//! Every document the repository cites exists inside it, and every section it cites exists there.
//!
//! Scanned: every UTF-8 file under the crate root, except build outputs, hidden folders (`.ci`
//! is scanned), fenced code blocks in Markdown (a file tree there names files relative to its
//! folders) and this file, whose fixtures are broken on purpose. Citations understood:
//! * a path ending in `.md`: it must name a file inside the repository, relative to the citing
//!   file's folder or to the root. URLs are not citations and are skipped.
//! * a quoted name right after a path (`docs/design.md, "The C API"`): a heading of that file.
//! * `§N`, `§N.M`, ranges (`§4.5–§4.7`, `§5.7–5.15`: both ends), `§N item K`, `§N items K, L
//!   and M`, `Appendix X`: a numbered heading of the cited document, and each item a numbered
//!   list item inside that section. `§N item` without its number (the number wrapped to the
//!   next line) is an error too: keep a citation on one line.
//!
//! A § belongs to the nearest path cited before it: in a Markdown file within the same
//! paragraph (else to the file itself), elsewhere anywhere earlier in the file (a source
//! comment names its document once, then cites bare §s). A § in a source file that names no
//! document before it is an error: the reader could not tell where to look.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

/// Folders that hold build outputs, caches or generated data, never documentation.
const SKIPPED_DIRS: [&str; 8] = [
    "target",
    "build",
    "dist",
    "__pycache__",
    "node_modules",
    "corpus",
    "artifacts",
    "coverage",
];
/// Larger files are data, not documentation.
const MAX_FILE_BYTES: u64 = 2 << 20;

/// What one scan found: the problems, and how many citations of each kind it checked.
#[derive(Default)]
struct Report {
    problems: Vec<String>,
    paths: usize,
    sections: usize,
}

/// One citation in a line, at a byte position.
enum Cite {
    Path {
        path: String,
        heading: Option<String>,
    },
    Section {
        ids: Vec<String>,
        items: Vec<u32>,
    },
    /// `§N item` with the number on the next line: unreadable for this check.
    Dangling(String),
}

/// The numbered headings and lines of a Markdown document.
struct Doc {
    lines: Vec<String>,
    /// (level, section id such as "7", "3.2" or "Appendix B", text, line index).
    headings: Vec<(usize, Option<String>, String, usize)>,
}

impl Doc {
    fn parse(text: &str) -> Doc {
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let mut headings = Vec::new();
        let mut fenced = false;
        for (i, line) in lines.iter().enumerate() {
            if line.trim_start().starts_with("```") {
                fenced = !fenced;
            }
            if fenced {
                continue;
            }
            let level = line.chars().take_while(|&c| c == '#').count();
            if level == 0 || !line[level..].starts_with(' ') {
                continue;
            }
            let text = line[level..].trim().to_owned();
            headings.push((level, heading_id(&text), text, i));
        }
        Doc { lines, headings }
    }

    /// The lines of section `id` (its heading up to the next heading of the same or a higher
    /// level), or None if no heading carries that number.
    fn section(&self, id: &str) -> Option<&[String]> {
        let at = self
            .headings
            .iter()
            .position(|(_, hid, _, _)| hid.as_deref() == Some(id))?;
        let (level, _, _, start) = self.headings[at];
        let end = self.headings[at + 1..]
            .iter()
            .find(|(l, _, _, _)| *l <= level)
            .map_or(self.lines.len(), |h| h.3);
        Some(&self.lines[start..end])
    }

    /// Whether a heading reads `name`, with or without its section number.
    fn has_heading(&self, name: &str) -> bool {
        let name = name.trim();
        self.headings.iter().any(|(_, id, text, _)| {
            let unnumbered = id
                .as_deref()
                .and_then(|id| text.strip_prefix(id))
                .map(|t| t.trim_start_matches('.').trim());
            text.eq_ignore_ascii_case(name)
                || unnumbered.is_some_and(|t| t.eq_ignore_ascii_case(name))
        })
    }
}

/// "7. Pitfalls" → "7", "3.2 GGT" → "3.2", "Appendix B. Defaults" → "Appendix B".
fn heading_id(text: &str) -> Option<String> {
    if let Some(rest) = text.strip_prefix("Appendix ") {
        let letter = rest.chars().next().filter(char::is_ascii_uppercase)?;
        return Some(format!("Appendix {letter}"));
    }
    let (id, _) = take_section_id(text)?;
    Some(id)
}

/// A section number at the start of `s`: digits, then `.digits` groups (a trailing dot is
/// punctuation). Returns it and the rest.
fn take_section_id(s: &str) -> Option<(String, &str)> {
    let digits = |t: &str| t.bytes().take_while(u8::is_ascii_digit).count();
    let mut end = digits(s);
    if end == 0 {
        return None;
    }
    while s[end..].starts_with('.') && digits(&s[end + 1..]) > 0 {
        end += 1 + digits(&s[end + 1..]);
    }
    Some((s[..end].to_owned(), &s[end..]))
}

/// The citation starting right after a '§'.
fn parse_section(s: &str) -> Option<Cite> {
    let (first, mut rest) = take_section_id(s)?;
    let mut ids = vec![first];
    for dash in ["–", "-"] {
        if let Some(r) = rest.strip_prefix(dash) {
            if let Some((last, r)) = take_section_id(r.strip_prefix('§').unwrap_or(r)) {
                ids.push(last);
                rest = r;
            }
            break;
        }
    }
    if matches!(rest.trim_end(), " item" | " items") {
        return Some(Cite::Dangling(ids.remove(0)));
    }
    let mut items = Vec::new();
    if let Some(mut r) = rest
        .strip_prefix(" items ")
        .or_else(|| rest.strip_prefix(" item "))
    {
        loop {
            let n = r.bytes().take_while(u8::is_ascii_digit).count();
            let Ok(item) = r[..n].parse() else { break };
            items.push(item);
            r = &r[n..];
            match [", ", " and ", ","]
                .iter()
                .find_map(|sep| r.strip_prefix(sep))
            {
                Some(next) if next.starts_with(|c: char| c.is_ascii_digit()) => r = next,
                _ => break,
            }
        }
    }
    Some(Cite::Section { ids, items })
}

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-')
}

fn is_delimiter(c: char) -> bool {
    c.is_whitespace() || matches!(c, '(' | ')' | '[' | ']' | '<' | '>' | '"' | '\'' | '`')
}

/// The citations of one line, in order.
fn citations(line: &str) -> Vec<Cite> {
    let mut found = Vec::new();
    for (i, c) in line.char_indices() {
        let rest = &line[i..];
        if c == '§' {
            found.extend(parse_section(&rest[c.len_utf8()..]));
        } else if rest.starts_with("Appendix ") && (i == 0 || !line[..i].ends_with(is_path_char)) {
            if let Some(id) = heading_id(rest) {
                found.push(Cite::Section {
                    ids: vec![id],
                    items: Vec::new(),
                });
            }
        } else if let Some(after) = rest.strip_prefix(".md") {
            if after.starts_with(|c: char| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let start = line[..i]
                .char_indices()
                .rev()
                .take_while(|&(_, c)| is_path_char(c))
                .last()
                .map_or(i, |(j, _)| j);
            let path = &line[start..i + 3];
            if path.starts_with(".md") || path.ends_with("/.md") {
                continue; // `*.md`: a pattern, not a file
            }
            let word_start = line[..start]
                .char_indices()
                .rev()
                .find(|&(_, c)| is_delimiter(c))
                .map_or(0, |(j, c)| j + c.len_utf8());
            let word_end = after.find(is_delimiter).map_or(line.len(), |j| i + 3 + j);
            let word = &line[word_start..word_end];
            if word.contains("://") || word.starts_with("www.") {
                continue;
            }
            let quoted = line[..start].ends_with(['"', '“']);
            let heading = (!quoted)
                .then(|| quoted_heading(after))
                .flatten()
                .map(str::to_owned);
            found.push(Cite::Path {
                path: path.to_owned(),
                heading,
            });
        }
    }
    found
}

/// `, "Heading"` or ` "Heading"` right after a path.
fn quoted_heading(after: &str) -> Option<&str> {
    let gap = after.len() - after.trim_start_matches([',', ' ']).len();
    if gap == 0 {
        return None;
    }
    let rest = &after[gap..];
    let (open, close) = [('"', '"'), ('“', '”')]
        .into_iter()
        .find(|&(open, _)| rest.starts_with(open))?;
    let body = &rest[open.len_utf8()..];
    Some(&body[..body.find(close)?])
}

/// Checks every citation under `root` (skipping `skip`, a path relative to it).
fn scan(root: &Path, skip: &Path) -> Report {
    let root = root.canonicalize().expect("the repository root");
    let mut files = Vec::new();
    collect_files(&root, &mut files);
    let mut checker = Checker {
        root,
        docs: HashMap::new(),
        report: Report::default(),
    };
    for file in files {
        if file.strip_prefix(&checker.root).unwrap() != skip {
            checker.check_file(&file);
        }
    }
    checker.report
}

/// The state of one scan: the parsed documents, and what was found.
struct Checker {
    root: PathBuf,
    docs: HashMap<PathBuf, Option<Doc>>,
    report: Report,
}

impl Checker {
    fn check_file(&mut self, file: &Path) {
        let Ok(text) = fs::read_to_string(file) else {
            return; // not UTF-8: not a document or a source file
        };
        let is_markdown = file.extension().is_some_and(|e| e == "md");
        // The document a bare § refers to: the last path cited (in Markdown, in this paragraph).
        let mut current: Option<Option<PathBuf>> = None;
        let mut fenced = false;
        for (n, line) in text.lines().enumerate() {
            let at = format!("{}:{}", self.shown(file), n + 1);
            if is_markdown && line.trim().is_empty() {
                current = None;
            }
            if is_markdown && line.trim_start().starts_with("```") {
                fenced = !fenced;
                continue;
            }
            if fenced {
                continue;
            }
            for cite in citations(line) {
                match cite {
                    Cite::Dangling(id) => self.problem(
                        &at,
                        format!("§{id} item without its number (keep the citation on one line)"),
                    ),
                    Cite::Path { path, heading } => {
                        current = Some(self.check_path(&at, file, &path, heading.as_deref()));
                    }
                    Cite::Section { ids, items } => {
                        self.report.sections += 1;
                        match (&current, is_markdown) {
                            (Some(Some(doc)), _) => {
                                self.check_section(&at, &doc.clone(), &ids, &items)
                            }
                            (Some(None), _) => {} // its path was reported already
                            (None, true) => self.check_section(&at, file, &ids, &items),
                            (None, false) => self.problem(
                                &at,
                                format!("§{} names no document (cite the .md file first)", ids[0]),
                            ),
                        }
                    }
                }
            }
        }
    }

    /// Checks a cited path (and the heading quoted after it); returns the file it names.
    fn check_path(
        &mut self,
        at: &str,
        citing: &Path,
        path: &str,
        heading: Option<&str>,
    ) -> Option<PathBuf> {
        self.report.paths += 1;
        let folder = citing.parent().unwrap_or(&self.root);
        let resolved = [folder.join(path), self.root.join(path)]
            .into_iter()
            .filter_map(|p| p.canonicalize().ok())
            .find(|p| p.is_file() && p.starts_with(&self.root));
        match (&resolved, heading) {
            (None, _) => self.problem(at, format!("`{path}` is not a file inside the repository")),
            (Some(doc), Some(name)) if !self.doc(doc).is_some_and(|d| d.has_heading(name)) => {
                self.problem(at, format!("`{path}` has no heading \"{name}\""))
            }
            _ => {}
        }
        resolved
    }

    /// Checks that `doc` has every section of `ids`, each with every item of `items`.
    fn check_section(&mut self, at: &str, doc: &Path, ids: &[String], items: &[u32]) {
        let shown = self.shown(doc);
        let mut missing = Vec::new();
        match self.doc(doc) {
            None => missing.push(format!("{shown} cannot be read")),
            Some(parsed) => {
                for id in ids {
                    let Some(lines) = parsed.section(id) else {
                        missing.push(format!("{shown} has no section {id}"));
                        continue;
                    };
                    for item in items {
                        let numbered = format!("{item}. ");
                        if !lines.iter().any(|l| l.trim_start().starts_with(&numbered)) {
                            missing.push(format!("{shown} §{id} has no item {item}"));
                        }
                    }
                }
            }
        }
        for m in missing {
            self.problem(at, m);
        }
    }

    fn doc(&mut self, path: &Path) -> Option<&Doc> {
        self.docs
            .entry(path.to_path_buf())
            .or_insert_with(|| fs::read_to_string(path).ok().map(|t| Doc::parse(&t)))
            .as_ref()
    }

    fn shown(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .display()
            .to_string()
    }

    fn problem(&mut self, at: &str, what: String) {
        self.report.problems.push(format!("{at}: {what}"));
    }
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry"))
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let kind = entry.file_type().expect("a file type");
        let path = entry.path();
        if kind.is_dir() {
            let hidden = name.starts_with('.') && name != ".ci";
            if !hidden && !SKIPPED_DIRS.contains(&name.as_str()) && !name.ends_with(".egg-info") {
                collect_files(&path, out);
            }
        } else if kind.is_file() && entry.metadata().is_ok_and(|m| m.len() <= MAX_FILE_BYTES) {
            out.push(path);
        }
    }
}

#[test]
fn every_cited_document_and_section_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let report = scan(root, Path::new("tests/doc_links.rs"));
    assert!(
        report.problems.is_empty(),
        "{} broken citation(s):\n{}",
        report.problems.len(),
        report.problems.join("\n")
    );
    // The sources cite docs/algorithm.md on every component: a scan that finds only a few
    // citations has stopped reading them.
    assert!(
        report.paths >= 50 && report.sections >= 100,
        "only {} paths and {} sections found",
        report.paths,
        report.sections
    );
}

/// A small repository with good and broken citations of every kind.
#[test]
fn broken_citations_are_reported_and_urls_are_not() {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("doc_links_fixture");
    let repo = root.join("repo");
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(repo.join("docs")).unwrap();
    fs::create_dir_all(repo.join("src")).unwrap();
    fs::write(root.join("outside.md"), "# Outside\n").unwrap();
    fs::write(
        repo.join("docs/guide.md"),
        "# Guide\n\n## 1. Start\n\n### 1.2 Detail\n\n## 7. Pitfalls\n\n1. one\n2. two\n\n\
         ## Appendix B. Defaults\n\nSee §1.2 and §7 item 2. Also §3.\n",
    )
    .unwrap();
    fs::write(
        repo.join("README.md"),
        "Read docs/guide.md §1.2–§7 and [the guide](docs/guide.md).\n\
         The upstream https://github.com/o/r/blob/main/NOTES.md and \
         [upstream](https://example.com/x/DESIGN.md) are links, and `*.md` is a pattern.\n\
         \n\
         A new paragraph cites §1 of this README, which has no numbered headings.\n\
         ```\nsrc/  lib.rs, notes.md\n```\n",
    )
    .unwrap();
    fs::write(
        repo.join("src/lib.rs"),
        "// Uses §7 before naming a document.\n\
         //! As docs/guide.md §7 items 1, 2 and 5 say (Appendix B; §9).\n\
         //! Also ../outside.md, docs/missing.md, docs/guide.md, \"Start\" and docs/guide.md \"Nope\".\n\
         //! Bare §1.2 refers to the last document named above; §8.1–8.2 does not exist.\n\
         // A citation split over lines, (§7 item\n// 2), cannot be checked.\n",
    )
    .unwrap();
    let report = scan(&repo, Path::new("none"));
    let expected = [
        "README.md:4: README.md has no section 1",
        "docs/guide.md:14: docs/guide.md has no section 3",
        "src/lib.rs:1: §7 names no document (cite the .md file first)",
        "src/lib.rs:2: docs/guide.md §7 has no item 5",
        "src/lib.rs:2: docs/guide.md has no section 9",
        "src/lib.rs:3: `../outside.md` is not a file inside the repository",
        "src/lib.rs:3: `docs/missing.md` is not a file inside the repository",
        "src/lib.rs:3: `docs/guide.md` has no heading \"Nope\"",
        "src/lib.rs:4: docs/guide.md has no section 8.1",
        "src/lib.rs:4: docs/guide.md has no section 8.2",
        "src/lib.rs:5: §7 item without its number (keep the citation on one line)",
    ];
    assert_eq!(report.problems, expected);
    // Two paths in README.md (the URLs, the pattern and the code block's tree are not
    // citations), five in src/lib.rs.
    assert_eq!(report.paths, 7);
}
