//! Reading a file a block ahead on a thread of its own: pass 2 of every large file, and
//! pass 1 once the container is known to be AEAD.

use std::{
    io::{self, Read},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
};

use super::{Checked, Deferred, BLOCK};

/// Files larger than this are read a block ahead on a thread of their own.
pub(super) const AHEAD_FROM: u64 = 4 * BLOCK as u64;

/// Pass 1 of a file: read on the calling thread until the engine knows the container, then,
/// for an AEAD one, a block ahead on a thread of its own. A SEIPD v1 container keeps reading
/// here: SHA-1 has a thread of its own, and a third busy thread on two cores would take turns
/// with it (measured: SHA-1 then ran at two thirds of its speed).
pub(super) struct Lazy {
    pub(super) inline: Option<Checked>,
    pub(super) ahead: Option<ReadAhead>,
    pub(super) wanted: Arc<AtomicBool>,
}

impl Read for Lazy {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if let Some(ahead) = &mut self.ahead {
            return ahead.read(out);
        }
        let switch = self.inline.as_ref().is_some_and(|c| {
            c.at == c.block.len() && !c.eof && self.wanted.load(Ordering::Relaxed) && c.large()
        });
        match self.inline.take() {
            Some(checked) if switch => self.ahead.insert(ReadAhead::new(checked, None)).read(out),
            Some(mut checked) => {
                let n = checked.read(out);
                self.inline = Some(checked);
                n
            }
            None => Ok(0),
        }
    }
}

/// A block read ahead, and the index of its check when that was left to the reading side.
type Filled = io::Result<(Vec<u8>, Option<usize>)>;

/// A [`Checked`] file read on its own thread, blocks handed over through a channel and
/// their buffers handed back (three in all: bounded memory, no page faults per block).
pub(super) struct ReadAhead {
    /// In a mutex only to be `Sync`, as the engine's readers must be.
    full: Option<Mutex<std::sync::mpsc::Receiver<Filled>>>,
    empty: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    thread: Option<std::thread::JoinHandle<()>>,
    current: Vec<u8>,
    at: usize,
    done: bool,
    /// Checks the blocks the thread left unchecked (pass 2).
    deferred: Option<Deferred>,
}

impl ReadAhead {
    pub(super) fn new(mut checked: Checked, deferred: Option<Deferred>) -> ReadAhead {
        use std::sync::mpsc::sync_channel;
        const BUFFERS: usize = 3;
        let (full_tx, full) = sync_channel::<Filled>(BUFFERS);
        let (empty, empty_rx) = sync_channel::<Vec<u8>>(BUFFERS);
        for _ in 0..BUFFERS {
            let _ = empty.send(Vec::with_capacity(BLOCK));
        }
        let thread = std::thread::spawn(move || {
            while let Ok(mut block) = empty_rx.recv() {
                let read = checked.read_block(&mut block);
                let last = checked.eof || read.is_err();
                let sent = full_tx.send(read.map(|index| (block, index)));
                if last {
                    // An empty block after the last one says "end".
                    let _ = full_tx.send(Ok((Vec::new(), None)));
                    return;
                }
                if sent.is_err() {
                    return;
                }
            }
        });
        ReadAhead {
            full: Some(Mutex::new(full)),
            empty: Some(empty),
            thread: Some(thread),
            current: Vec::new(),
            at: 0,
            done: false,
            deferred,
        }
    }
}

impl Read for ReadAhead {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.at < self.current.len() {
                let n = out.len().min(self.current.len() - self.at);
                out[..n].copy_from_slice(&self.current[self.at..self.at + n]);
                self.at += n;
                return Ok(n);
            }
            if self.done {
                return Ok(0);
            }
            let used = std::mem::take(&mut self.current);
            if used.capacity() > 0 {
                if let Some(empty) = &self.empty {
                    let _ = empty.send(used);
                }
            }
            self.at = 0;
            let next = self
                .full
                .as_mut()
                .and_then(|f| f.get_mut().ok())
                .and_then(|f| f.recv().ok());
            match next {
                Some(Ok((mut block, unchecked))) => {
                    if let Some(index) = unchecked {
                        // Checked here, before a byte of it is returned.
                        let checked = match &self.deferred {
                            Some(deferred) => deferred.check(index, &mut block),
                            None => Err(io::Error::other("a block was left unchecked")),
                        };
                        if let Err(e) = checked {
                            self.done = true;
                            return Err(e);
                        }
                    }
                    self.done = block.is_empty();
                    self.current = block;
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                None => {
                    self.done = true;
                    return Err(io::Error::other("the reading thread stopped"));
                }
            }
        }
    }
}

impl Drop for ReadAhead {
    /// Stops the thread and waits for it: pass 2 must not start while pass 1's thread may
    /// still record block hashes.
    fn drop(&mut self) {
        self.full.take();
        self.empty.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
