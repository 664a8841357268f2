//! `cardecrypt completions SHELL` and `cardecrypt man DIR`: shell completions and man pages,
//! generated from the one CLI definition.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use clap::CommandFactory;

use crate::{
    cli::Cli,
    error::{Error, Result},
};

/// Writes the completion script for `shell`.
pub fn completions(shell: clap_complete::Shell, out: &mut dyn Write) -> Result<()> {
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "cardecrypt", out);
    Ok(())
}

/// Writes one man page per visible command (`cardecrypt.1`, `cardecrypt-card-import.1`, ...)
/// into `dir`; returns the files written.
pub fn man_pages(dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    let mut written = Vec::new();
    let mut cmd = Cli::command();
    cmd.build();
    page(&cmd, "cardecrypt", dir, &mut written)?;
    Ok(written)
}

fn page(cmd: &clap::Command, name: &str, dir: &Path, written: &mut Vec<PathBuf>) -> Result<()> {
    let cmd = cmd.clone().name(name.to_string());
    let path = dir.join(format!("{name}.1"));
    let mut text = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut text)
        .map_err(|e| Error::io("cannot render the man page", e))?;
    std::fs::write(&path, text)
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        page(sub, &format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_build_for_every_shell() {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let mut out = Vec::new();
            completions(shell, &mut out).expect("completions");
            let text = String::from_utf8(out).expect("utf8");
            for word in ["card", "mail", "doctor", "pin-file", "factory-reset"] {
                assert!(text.contains(word), "{shell:?} completions lack {word}");
            }
        }
    }

    #[test]
    fn man_pages_build_for_every_command() {
        let dir = tempfile::tempdir().expect("tempdir");
        let written = man_pages(dir.path()).expect("man pages");
        let names: Vec<String> = written
            .iter()
            .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
            .collect();
        for want in [
            "cardecrypt.1",
            "cardecrypt-card.1",
            "cardecrypt-card-import.1",
            "cardecrypt-mail.1",
            "cardecrypt-card-pin-change-user.1",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
        }
        assert!(!names.iter().any(|n| n.contains("__hold")), "{names:?}");
        let top = std::fs::read_to_string(dir.path().join("cardecrypt.1")).expect("read");
        assert!(
            top.contains(".TH cardecrypt 1"),
            "{}",
            &top[..200.min(top.len())]
        );
        assert!(
            top.contains("Exit codes"),
            "the exit codes belong in the man page"
        );
    }
}
