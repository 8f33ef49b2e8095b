//! A Dockerfile reader for what an image's final stage says: its base, user, entrypoint, command,
//! environment, labels, working directory and the files it copies in.
//!
//! It follows the Dockerfile reference where the final stages of netassay's and Kubernetes' pause
//! image need it: `\` line continuations, comment lines (also inside a continuation), global
//! `ARG`s for `FROM`, stage `ARG`s and `ENV`s for the instructions after them, `$NAME`,
//! `${NAME}`, `${NAME:-word}` and `${NAME:+word}`, quotes in `ENV` and `LABEL`, the exec (JSON)
//! and shell forms of `ENTRYPOINT` and `CMD`. A final stage that does more than describe files
//! and metadata (a `RUN`, a heredoc, a remote `ADD`) is refused: no container engine runs here.

use std::collections::BTreeMap;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DockerfileError {
    #[error("line {line}: {why}")]
    Syntax { line: usize, why: String },
    #[error("the Dockerfile has no FROM")]
    NoStage,
    #[error("line {line}: {instruction} in the final stage needs a container engine; only ARG, ENV, LABEL, USER, WORKDIR, ENTRYPOINT, CMD, COPY and ADD of local files can be written without one")]
    Unsupported { line: usize, instruction: String },
}

fn syntax(line: usize, why: impl Into<String>) -> DockerfileError {
    DockerfileError::Syntax {
        line,
        why: why.into(),
    }
}

/// One instruction: its keyword in upper case and the rest of its (joined) lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    pub line: usize,
    pub keyword: String,
    pub args: String,
}

/// The instructions of a Dockerfile, split into the global part (before the first `FROM`) and
/// one list per stage (each starting with its `FROM`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    pub global: Vec<Instruction>,
    pub stages: Vec<Vec<Instruction>>,
}

/// A `COPY` or `ADD` of the final stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    pub line: usize,
    /// The instruction as written (for the image's history).
    pub text: String,
    /// `--from=NAME`: a build stage (or image) rather than the build context.
    pub from: Option<String>,
    pub sources: Vec<String>,
    pub dest: String,
    /// `--chown=UID[:GID]`, numeric.
    pub chown: Option<(u32, u32)>,
    /// `--chmod=MODE`, octal.
    pub chmod: Option<u32>,
}

/// What the final stage says about the image.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FinalStage {
    /// The base image, its build arguments substituted.
    pub base: String,
    pub user: Option<String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    /// `ENV` settings in order (a later one for the same name wins).
    pub env: Vec<(String, String)>,
    pub labels: BTreeMap<String, String>,
    pub workdir: Option<String>,
    pub copies: Vec<Copy>,
    /// Every instruction as written, for the image's history.
    pub history: Vec<(String, bool)>,
}

impl Dockerfile {
    pub fn parse(text: &str) -> Result<Dockerfile, DockerfileError> {
        let mut global = Vec::new();
        let mut stages: Vec<Vec<Instruction>> = Vec::new();
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
        while let Some((line, first)) = lines.next() {
            let trimmed = first.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let mut joined = String::new();
            let mut current = first.trim_end();
            loop {
                match current.strip_suffix('\\') {
                    Some(head) => {
                        joined.push_str(head);
                        joined.push(' ');
                        // The next line that is not a comment or blank continues it.
                        let next = loop {
                            match lines.next() {
                                None => break None,
                                Some((_, l)) if l.trim().starts_with('#') => continue,
                                Some((_, l)) if l.trim().is_empty() => continue,
                                Some((_, l)) => break Some(l),
                            }
                        };
                        match next {
                            Some(l) => current = l.trim_end(),
                            None => break,
                        }
                    }
                    None => {
                        joined.push_str(current);
                        break;
                    }
                }
            }
            let joined = joined.trim();
            let (keyword, args) = joined
                .split_once(char::is_whitespace)
                .unwrap_or((joined, ""));
            if !keyword.chars().all(|c| c.is_ascii_alphabetic()) {
                return Err(syntax(line, format!("{keyword:?} is not an instruction")));
            }
            let instruction = Instruction {
                line,
                keyword: keyword.to_ascii_uppercase(),
                args: args.trim().to_string(),
            };
            if instruction.keyword == "FROM" {
                stages.push(vec![instruction]);
            } else if let Some(stage) = stages.last_mut() {
                stage.push(instruction);
            } else if instruction.keyword == "ARG" {
                global.push(instruction);
            } else {
                return Err(syntax(
                    line,
                    format!(
                        "{} before the first FROM (only ARG may come first)",
                        instruction.keyword
                    ),
                ));
            }
        }
        if stages.is_empty() {
            return Err(DockerfileError::NoStage);
        }
        Ok(Dockerfile { global, stages })
    }

    /// The final stage, with `build_args` overriding the `ARG` defaults.
    pub fn final_stage(
        &self,
        build_args: &BTreeMap<String, String>,
    ) -> Result<FinalStage, DockerfileError> {
        // Global ARGs: for FROM lines, and for a stage's `ARG NAME` without a default.
        let mut global: BTreeMap<String, String> = BTreeMap::new();
        for arg in &self.global {
            let (name, value) = declare_arg(arg, &global, build_args)?;
            if let Some(value) = value {
                global.insert(name, value);
            }
        }
        let Some(stage) = self.stages.last() else {
            return Err(DockerfileError::NoStage);
        };
        let mut out = FinalStage::default();
        // The variables instructions see: stage ARGs, then ENVs.
        let mut vars: BTreeMap<String, String> = BTreeMap::new();
        for ins in stage {
            let line = ins.line;
            let mut empty_layer = true;
            match ins.keyword.as_str() {
                "FROM" => {
                    let words = words(&ins.args, line, &global)?;
                    let words: Vec<&String> = words
                        .iter()
                        .filter(|w| !w.starts_with("--platform="))
                        .collect();
                    match words.as_slice() {
                        [image] => out.base = image.to_string(),
                        [image, r#as, _] if r#as.eq_ignore_ascii_case("as") => {
                            out.base = image.to_string()
                        }
                        _ => return Err(syntax(line, "FROM takes IMAGE [AS NAME]")),
                    }
                }
                "ARG" => {
                    let (name, value) = declare_arg(ins, &vars, build_args)?;
                    let value = value.or_else(|| global.get(&name).cloned());
                    if let Some(value) = value {
                        vars.insert(name, value);
                    }
                }
                "ENV" => {
                    for (name, value) in pairs(&ins.args, line, &vars, true)? {
                        vars.insert(name.clone(), value.clone());
                        out.env.retain(|(n, _)| *n != name);
                        out.env.push((name, value));
                    }
                }
                "LABEL" => {
                    for (name, value) in pairs(&ins.args, line, &vars, false)? {
                        out.labels.insert(name, value);
                    }
                }
                "USER" => match words(&ins.args, line, &vars)?.as_slice() {
                    [user] => out.user = Some(user.clone()),
                    _ => return Err(syntax(line, "USER takes one USER[:GROUP]")),
                },
                "WORKDIR" => {
                    let dir = words(&ins.args, line, &vars)?.join(" ");
                    out.workdir = Some(match &out.workdir {
                        Some(prev) if !dir.starts_with('/') => format!("{prev}/{dir}"),
                        _ => dir,
                    });
                }
                "ENTRYPOINT" => {
                    out.entrypoint = Some(command(&ins.args, line)?);
                    // As Docker does: an ENTRYPOINT resets the CMD set before it.
                    out.cmd = None;
                }
                "CMD" => out.cmd = Some(command(&ins.args, line)?),
                "COPY" | "ADD" => {
                    out.copies.push(copy(ins, &vars)?);
                    empty_layer = false;
                }
                "EXPOSE" | "STOPSIGNAL" | "HEALTHCHECK" | "VOLUME" | "SHELL" | "ONBUILD"
                | "RUN" | "MAINTAINER" => {
                    return Err(DockerfileError::Unsupported {
                        line,
                        instruction: ins.keyword.clone(),
                    })
                }
                other => return Err(syntax(line, format!("unknown instruction {other}"))),
            }
            out.history
                .push((format!("{} {}", ins.keyword, ins.args), empty_layer));
        }
        Ok(out)
    }
}

/// `ARG NAME[=default]`: the name and its value (the build argument, else the default).
fn declare_arg(
    ins: &Instruction,
    vars: &BTreeMap<String, String>,
    build_args: &BTreeMap<String, String>,
) -> Result<(String, Option<String>), DockerfileError> {
    let line = ins.line;
    let text = ins.args.trim();
    let (name, default) = match text.split_once('=') {
        Some((name, _)) => {
            let mut pairs = pairs(text, line, vars, false)?;
            if pairs.len() != 1 {
                return Err(syntax(line, "ARG declares one NAME[=default]"));
            }
            let (n, v) = pairs.remove(0);
            if n != name {
                return Err(syntax(line, "ARG declares one NAME[=default]"));
            }
            (n, Some(v))
        }
        None => (text.to_string(), None),
    };
    if !valid_name(&name) {
        return Err(syntax(line, format!("{name:?} is not an ARG name")));
    }
    Ok((name.clone(), build_args.get(&name).cloned().or(default)))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

/// `ENTRYPOINT` / `CMD`: the exec form (a JSON array of strings) as is, the shell form wrapped
/// in `/bin/sh -c` as Docker does.
fn command(args: &str, line: usize) -> Result<Vec<String>, DockerfileError> {
    if args.starts_with('[') {
        serde_json::from_str::<Vec<String>>(args)
            .map_err(|e| syntax(line, format!("not a JSON array of strings: {e}")))
    } else {
        Ok(vec!["/bin/sh".into(), "-c".into(), args.to_string()])
    }
}

/// A `COPY` or `ADD`.
fn copy(ins: &Instruction, vars: &BTreeMap<String, String>) -> Result<Copy, DockerfileError> {
    let line = ins.line;
    if ins.args.contains("<<") {
        return Err(DockerfileError::Unsupported {
            line,
            instruction: format!("{} with a heredoc", ins.keyword),
        });
    }
    let mut rest = ins.args.trim();
    let (mut from, mut chown, mut chmod) = (None, None, None);
    while let Some(flag) = rest.strip_prefix("--") {
        let (flag, tail) = flag.split_once(char::is_whitespace).unwrap_or((flag, ""));
        rest = tail.trim_start();
        let (name, value) = flag.split_once('=').unwrap_or((flag, ""));
        let value = expand(value, line, vars)?;
        match name {
            "from" => from = Some(value),
            "chown" => chown = Some(owner(&value, line)?),
            "chmod" => {
                chmod =
                    Some(u32::from_str_radix(&value, 8).map_err(|_| {
                        syntax(line, format!("--chmod={value} is not an octal mode"))
                    })?)
            }
            // Layer linking changes how a layer is built, not what it holds.
            "link" => {}
            other => return Err(syntax(line, format!("--{other} is not supported"))),
        }
    }
    let mut paths = if rest.starts_with('[') {
        serde_json::from_str::<Vec<String>>(rest)
            .map_err(|e| syntax(line, format!("not a JSON array of strings: {e}")))?
            .iter()
            .map(|p| expand(p, line, vars))
            .collect::<Result<Vec<_>, _>>()?
    } else {
        words(rest, line, vars)?
    };
    if paths.len() < 2 {
        return Err(syntax(
            line,
            format!("{} needs a source and a destination", ins.keyword),
        ));
    }
    let dest = paths.pop().unwrap_or_default();
    if ins.keyword == "ADD"
        && paths
            .iter()
            .any(|p| p.contains("://") || p.starts_with("git@"))
    {
        return Err(DockerfileError::Unsupported {
            line,
            instruction: "ADD of a URL".into(),
        });
    }
    Ok(Copy {
        line,
        text: format!("{} {}", ins.keyword, ins.args),
        from,
        sources: paths,
        dest,
        chown,
        chmod,
    })
}

/// `UID[:GID]`, numeric (names would need the image's passwd file).
fn owner(value: &str, line: usize) -> Result<(u32, u32), DockerfileError> {
    let parse = |s: &str| {
        s.parse::<u32>().map_err(|_| {
            syntax(
                line,
                format!("--chown={value}: only numeric owners are supported"),
            )
        })
    };
    match value.split_once(':') {
        Some((u, g)) => Ok((parse(u)?, parse(g)?)),
        None => {
            let u = parse(value)?;
            Ok((u, u))
        }
    }
}

/// Splits on unquoted whitespace, removing quotes and escapes and substituting variables.
fn words(
    text: &str,
    line: usize,
    vars: &BTreeMap<String, String>,
) -> Result<Vec<String>, DockerfileError> {
    Lexer::new(text, line, vars).words()
}

/// `NAME=VALUE ...` pairs (ENV, LABEL, ARG); with `legacy`, also ENV's `NAME VALUE` form.
fn pairs(
    text: &str,
    line: usize,
    vars: &BTreeMap<String, String>,
    legacy: bool,
) -> Result<Vec<(String, String)>, DockerfileError> {
    let first = text.split_whitespace().next().unwrap_or("");
    if legacy && !first.contains('=') {
        let value = text[first.len()..].trim();
        return Ok(vec![(first.to_string(), expand(value, line, vars)?)]);
    }
    let mut out = Vec::new();
    for word in words(text, line, vars)? {
        let Some((name, value)) = word.split_once('=') else {
            return Err(syntax(line, format!("{word:?} is not NAME=VALUE")));
        };
        if name.is_empty() {
            return Err(syntax(line, format!("{word:?} has no name")));
        }
        out.push((name.to_string(), value.to_string()));
    }
    if out.is_empty() {
        return Err(syntax(line, "expected NAME=VALUE"));
    }
    Ok(out)
}

/// Substitutes variables in `text` (quotes are kept as they are).
fn expand(
    text: &str,
    line: usize,
    vars: &BTreeMap<String, String>,
) -> Result<String, DockerfileError> {
    let mut lexer = Lexer::new(text, line, vars);
    lexer.quotes = false;
    Ok(lexer.words()?.join(" "))
}

struct Lexer<'a> {
    chars: Vec<char>,
    at: usize,
    line: usize,
    vars: &'a BTreeMap<String, String>,
    /// Whether quotes group and are removed (off: only variables are substituted, and the
    /// text is one word).
    quotes: bool,
}

impl<'a> Lexer<'a> {
    fn new(text: &str, line: usize, vars: &'a BTreeMap<String, String>) -> Self {
        Lexer {
            chars: text.chars().collect(),
            at: 0,
            line,
            vars,
            quotes: true,
        }
    }

    fn words(&mut self) -> Result<Vec<String>, DockerfileError> {
        let mut out = Vec::new();
        let mut word = String::new();
        let mut in_word = false;
        let (mut single, mut double) = (false, false);
        while let Some(&c) = self.chars.get(self.at) {
            self.at += 1;
            match c {
                '\'' if self.quotes && !double => {
                    single = !single;
                    in_word = true;
                }
                '"' if self.quotes && !single => {
                    double = !double;
                    in_word = true;
                }
                '\\' if !single => {
                    // An escape: the next character as is.
                    match self.chars.get(self.at) {
                        Some(&next) => {
                            if !self.quotes && next != '$' {
                                word.push('\\');
                            }
                            word.push(next);
                            self.at += 1;
                        }
                        None => word.push('\\'),
                    }
                    in_word = true;
                }
                '$' if !single => {
                    word.push_str(&self.variable()?);
                    in_word = true;
                }
                c if c.is_whitespace() && self.quotes && !single && !double => {
                    if in_word {
                        out.push(std::mem::take(&mut word));
                        in_word = false;
                    }
                }
                c => {
                    word.push(c);
                    in_word = true;
                }
            }
        }
        if single || double {
            return Err(syntax(self.line, "unterminated quote"));
        }
        if in_word || !self.quotes {
            out.push(word);
        }
        Ok(out)
    }

    /// After a `$`: the substituted value.
    fn variable(&mut self) -> Result<String, DockerfileError> {
        let name_at = |chars: &[char], from: usize| {
            chars[from..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
                .count()
        };
        match self.chars.get(self.at) {
            Some('{') => {
                let start = self.at + 1;
                let Some(len) = self.chars[start..].iter().position(|&c| c == '}') else {
                    return Err(syntax(self.line, "unterminated ${"));
                };
                let inner: String = self.chars[start..start + len].iter().collect();
                self.at = start + len + 1;
                let value = |name: &str| self.vars.get(name).cloned().unwrap_or_default();
                if let Some((name, word)) = inner.split_once(":-") {
                    let v = value(name);
                    Ok(if v.is_empty() { word.to_string() } else { v })
                } else if let Some((name, word)) = inner.split_once(":+") {
                    Ok(if value(name).is_empty() {
                        String::new()
                    } else {
                        word.to_string()
                    })
                } else if valid_name(&inner) {
                    Ok(value(&inner))
                } else {
                    Err(syntax(self.line, format!("${{{inner}}} is not supported")))
                }
            }
            Some(_) => {
                let len = name_at(&self.chars, self.at);
                if len == 0 {
                    return Ok("$".into());
                }
                let name: String = self.chars[self.at..self.at + len].iter().collect();
                self.at += len;
                Ok(self.vars.get(&name).cloned().unwrap_or_default())
            }
            None => Ok("$".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn final_stage(text: &str, args: &[(&str, &str)]) -> Result<FinalStage, DockerfileError> {
        let args = args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Dockerfile::parse(text)?.final_stage(&args)
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_repositorys_dockerfile_reads_as_its_final_stage_says() {
        let text = include_str!("../../../Dockerfile");
        let stage = final_stage(text, &[]).unwrap();
        assert_eq!(stage.base, "gcr.io/distroless/static-debian12:nonroot");
        assert_eq!(stage.user.as_deref(), Some("65532:65532"));
        assert_eq!(stage.entrypoint, Some(strings(&["netassay"])));
        assert_eq!(stage.cmd, Some(strings(&["--help"])));
        assert_eq!(
            stage.env,
            [(
                "PATH".to_string(),
                "/usr/local/bin:/usr/bin:/bin".to_string()
            )]
        );
        assert_eq!(stage.copies.len(), 1);
        let copy = &stage.copies[0];
        assert_eq!(copy.from.as_deref(), Some("build"));
        assert_eq!(copy.sources, ["/out/netassay"]);
        assert_eq!(copy.dest, "/usr/local/bin/netassay");
        assert_eq!(stage.labels["org.opencontainers.image.title"], "netassay");
        assert_eq!(
            stage.labels["org.opencontainers.image.licenses"],
            "Apache-2.0"
        );
        assert_eq!(
            stage.labels["org.opencontainers.image.description"],
            "Active NetworkPolicy conformance testing for Kubernetes"
        );
        // The base is a build argument.
        let mirrored = final_stage(text, &[("BASE_IMAGE", "mirror.example/static:nonroot")]);
        assert_eq!(mirrored.unwrap().base, "mirror.example/static:nonroot");
    }

    #[test]
    fn kubernetes_pause_dockerfile() {
        // build/pause/Dockerfile of k8s.io/kubernetes v1.37.2, less its license header.
        let text = "ARG BASE\nFROM ${BASE}\nARG ARCH\nADD bin/pause-linux-${ARCH} /pause\n\
                    USER 65535:65535\nENTRYPOINT [\"/pause\"]\n";
        let stage = final_stage(text, &[("BASE", "scratch"), ("ARCH", "amd64")]).unwrap();
        assert_eq!(stage.base, "scratch");
        assert_eq!(stage.copies[0].sources, ["bin/pause-linux-amd64"]);
        assert_eq!(stage.copies[0].dest, "/pause");
        assert_eq!(stage.user.as_deref(), Some("65535:65535"));
        assert_eq!(stage.entrypoint, Some(strings(&["/pause"])));
        assert_eq!(stage.cmd, None);
    }

    #[test]
    fn continuations_comments_and_variables() {
        let text = r#"
# syntax=docker/dockerfile:1
ARG BASE=scratch
FROM alpine AS build
RUN echo not in the final stage
FROM $BASE
ARG DIR=/opt
ARG BASE
ENV A=1 \
# a comment inside the continuation
    B="two words" C='$A' D=$A${A}x E=${UNSET:-dflt} F=${DIR:+set} I=${A:+set}
ENV G ${DIR}/legacy form
ENV H=$A
LABEL "quoted key"="v" plain=w\ x base=$BASE
WORKDIR /srv
WORKDIR sub
CMD echo hi
ENTRYPOINT ["a", "b"]
COPY --chown=1:2 --chmod=0640 ["x", "${DIR}/y", "/dst/"]
"#;
        let stage = final_stage(text, &[]).unwrap();
        assert_eq!(stage.base, "scratch");
        let env: BTreeMap<_, _> = stage.env.iter().cloned().collect();
        assert_eq!(env["A"], "1");
        assert_eq!(env["B"], "two words");
        assert_eq!(env["C"], "$A");
        // As in Docker, an ENV sees the variables set before it, not those it sets itself.
        assert_eq!(env["D"], "x");
        assert_eq!(env["H"], "1");
        assert_eq!(env["E"], "dflt");
        assert_eq!(env["F"], "set");
        assert_eq!(env["I"], "");
        assert_eq!(env["G"], "/opt/legacy form");
        assert_eq!(stage.labels["quoted key"], "v");
        assert_eq!(stage.labels["plain"], "w x");
        assert_eq!(stage.labels["base"], "scratch");
        assert_eq!(stage.workdir.as_deref(), Some("/srv/sub"));
        // The ENTRYPOINT after it reset the CMD.
        assert_eq!(stage.cmd, None);
        assert_eq!(stage.entrypoint, Some(strings(&["a", "b"])));
        let copy = &stage.copies[0];
        assert_eq!(copy.sources, ["x", "/opt/y"]);
        assert_eq!(copy.dest, "/dst/");
        assert_eq!(copy.chown, Some((1, 2)));
        assert_eq!(copy.chmod, Some(0o640));
        assert_eq!(
            stage.history.iter().filter(|(_, empty)| !empty).count(),
            1,
            "only the COPY adds a layer"
        );
        // A shell-form command runs through /bin/sh, as Docker writes it.
        let shell = final_stage("FROM scratch\nCMD echo $HOME\n", &[]).unwrap();
        assert_eq!(shell.cmd, Some(strings(&["/bin/sh", "-c", "echo $HOME"])));
    }

    #[test]
    fn a_final_stage_that_needs_an_engine_is_refused() {
        assert_eq!(
            final_stage("FROM scratch\nRUN true\n", &[]),
            Err(DockerfileError::Unsupported {
                line: 2,
                instruction: "RUN".into()
            })
        );
        assert!(matches!(
            final_stage("FROM scratch\nADD https://example.org/x /x\n", &[]),
            Err(DockerfileError::Unsupported { line: 2, .. })
        ));
        assert!(matches!(
            final_stage("FROM scratch\nCOPY <<EOF /x\nhi\nEOF\n", &[]),
            Err(DockerfileError::Unsupported { line: 2, .. })
        ));
    }

    #[test]
    fn malformed_files_are_errors_with_their_line() {
        assert_eq!(
            Dockerfile::parse("# nothing\n"),
            Err(DockerfileError::NoStage)
        );
        assert!(matches!(
            Dockerfile::parse("ENV A=1\nFROM scratch\n"),
            Err(DockerfileError::Syntax { line: 1, .. })
        ));
        for (text, line) in [
            ("FROM scratch\nENTRYPOINT [\"a\",\n", 2),
            ("FROM scratch\nUSER a b\n", 2),
            ("FROM scratch\nENV A=\"open\n", 2),
            ("FROM scratch\nCOPY only\n", 2),
            ("FROM scratch\nCOPY --chown=me /a /b\n", 2),
            ("FROM scratch\nCOPY --chmod=9 /a /b\n", 2),
            ("FROM scratch\nCOPY --parents /a /b\n", 2),
            ("FROM scratch\nLABEL novalue\n", 2),
            ("FROM scratch\nENV A=${B/x/y}\n", 2),
            ("FROM scratch\nBOGUS x\n", 2),
            ("FROM a b c d\n", 1),
        ] {
            match final_stage(text, &[]) {
                Err(DockerfileError::Syntax { line: l, .. }) => assert_eq!(l, line, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
