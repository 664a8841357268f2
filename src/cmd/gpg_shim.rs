//! `cardecrypt gpg-shim install|remove`.

use crate::{
    cli::GpgShimCommand,
    error::Result,
    gpg::{real, shim},
};

pub fn run(command: GpgShimCommand) -> Result<()> {
    match command {
        GpgShimCommand::Install(args) => {
            let dir = match args.dir {
                Some(d) => d,
                None => shim::default_dir()?,
            };
            for link in shim::install(&dir)? {
                eprintln!("cardecrypt: {} -> cardecrypt-gpg", link.display());
            }
            match shim::first_on_path("gpg") {
                Some(first) if real::is_front_end(&first) => {
                    match real::find(real::Program::Gpg, None) {
                        Ok(gpg) => eprintln!(
                            "cardecrypt: gpg on PATH is now cardecrypt-gpg; the real gpg is {}",
                            gpg.display()
                        ),
                        Err(e) => eprintln!("cardecrypt: {e}"),
                    }
                }
                _ => eprintln!(
                    "cardecrypt: put {} before the real gpg on PATH (e.g. in ~/.profile: \
                     export PATH=\"{}:$PATH\"), then restart your mail client",
                    dir.display(),
                    dir.display()
                ),
            }
            Ok(())
        }
        GpgShimCommand::Remove(args) => {
            let dir = match args.dir {
                Some(d) => d,
                None => shim::default_dir()?,
            };
            let removed = shim::remove(&dir)?;
            if removed.is_empty() {
                eprintln!("cardecrypt: no cardecrypt-gpg links in {}", dir.display());
            }
            for link in removed {
                eprintln!("cardecrypt: removed {}", link.display());
            }
            Ok(())
        }
    }
}
