//! The fast path of cardecrypt-gpg: an inner message of mail size that is only literal data
//! (compressed or not, no signature) is written by us, and no real gpg runs for it.

use sequoia_openpgp::{
    parse::{PacketParser, PacketParserResult, Parse},
    Packet,
};
use zeroize::Zeroizing;

/// The most literal data taken from a held stream ourselves (a bomb in 1 MiB of compressed
/// data is left to the real gpg, which streams it).
const OWN_LITERAL_LIMIT: u64 = 16 << 20;

/// The literal data of an unsigned inner message.
pub(super) struct OwnLiteral {
    pub format: u8,
    pub date: u32,
    pub name: Vec<u8>,
    pub body: Zeroizing<Vec<u8>>,
}

/// The literal data of `stream` when it is only that (compressed or not): no signature, no
/// second literal, nothing else. Anything else is the real gpg's to read and judge.
pub(super) fn unsigned_literal(stream: &[u8]) -> Option<OwnLiteral> {
    use std::io::Read;
    let mut found = None;
    let mut ppr = PacketParser::from_bytes(stream).ok()?;
    while let PacketParserResult::Some(mut pp) = ppr {
        match &pp.packet {
            Packet::CompressedData(_) => {}
            Packet::Literal(l) if found.is_none() => {
                let (format, name) = (u8::from(l.format()), l.filename().unwrap_or_default());
                let date = l.date().map_or(0, |d| crate::time::to_secs(d) as u32);
                let name = name.to_vec();
                let mut body = Zeroizing::new(Vec::new());
                (&mut pp)
                    .take(OWN_LITERAL_LIMIT + 1)
                    .read_to_end(&mut body)
                    .ok()?;
                if body.len() as u64 > OWN_LITERAL_LIMIT {
                    return None;
                }
                found = Some(OwnLiteral {
                    format,
                    date,
                    name,
                    body,
                });
            }
            _ => return None,
        }
        ppr = pp.recurse().ok()?.1;
    }
    match ppr {
        PacketParserResult::EOF(eof) if eof.is_message().is_ok() => found,
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use sequoia_openpgp::{
        serialize::stream::{Compressor, LiteralWriter, Message},
        types::CompressionAlgorithm,
    };

    use std::io::Write;

    use super::*;

    fn stream(compress: bool, body: &[u8]) -> Vec<u8> {
        let mut sink = Vec::new();
        let mut message = Message::new(&mut sink);
        if compress {
            message = Compressor::new(message)
                .algo(CompressionAlgorithm::Zlib)
                .build()
                .expect("compressor");
        }
        let mut w = LiteralWriter::new(message)
            .filename("note.txt")
            .expect("name")
            .build()
            .expect("literal");
        w.write_all(body).expect("write");
        w.finalize().expect("finalize");
        sink
    }

    #[test]
    fn an_unsigned_literal_is_ours_to_write_and_anything_else_is_gpgs() {
        for compress in [false, true] {
            let lit = unsigned_literal(&stream(compress, b"hello\n")).expect("literal");
            assert_eq!(&lit.body[..], b"hello\n");
            assert_eq!(lit.name, b"note.txt");
            assert_eq!(lit.format, b'b');
        }
        let mut twice = stream(false, b"one");
        twice.extend(stream(false, b"two"));
        assert!(unsigned_literal(&twice).is_none(), "two literals");
        assert!(unsigned_literal(b"not openpgp at all").is_none());
        assert!(unsigned_literal(&[]).is_none());
        let big = vec![0u8; OWN_LITERAL_LIMIT as usize + 1];
        assert!(
            unsigned_literal(&stream(true, &big)).is_none(),
            "past the limit"
        );
    }
}
