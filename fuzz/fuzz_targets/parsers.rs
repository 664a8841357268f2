//! The small parsers that read what a user or a caller hands over: the config file, PIN
//! lines, durations, and gpg command lines as the gpg front end reads them.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = cardecrypt::config::Config::parse(&text);
    let _ = cardecrypt::card::pin::first_line_pin(data, "fuzz");
    let _ = cardecrypt::time::parse_duration(&text);
    let args: Vec<std::ffi::OsString> = text.split('\0').map(Into::into).collect();
    let _ = cardecrypt::gpg::args::parse(&args);
    let _ = cardecrypt::mail::mime::ContentType::parse(&text);
});
