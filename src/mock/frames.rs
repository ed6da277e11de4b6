//! A byte-level HTTP/2 frame layer between TLS and the `h2` server.
//!
//! `h2` 0.4 fixes SETTINGS_MAX_CONCURRENT_STREAMS at the handshake and offers no way to change it
//! on a live connection, and its GOAWAY frames carry no debug data. APNs does both: it advertises one
//! stream until the first token-authenticated push succeeds, then (typically) 1000, may drop back to
//! one after a rejection, and explains a GOAWAY with `{"reason": ...}`. This layer reproduces that on
//! the wire:
//!
//! - outbound, it rewrites the server preface SETTINGS to advertise the initial limit, injects a
//!   SETTINGS frame (MAX_CONCURRENT_STREAMS only) at the next frame boundary when asked, and appends
//!   the requested debug data to GOAWAY frames;
//! - inbound, it swallows the client's SETTINGS ACKs for the frames it injected (so `h2` never sees
//!   an ACK it did not ask for) and tracks which limit the client has acknowledged, so the server
//!   enforces a lowered limit only once the client knows it (RFC 9113 §6.5.3) and a raised one at once;
//! - both ways, it counts the client's open streams exactly, in wire order (RFC 9113 §5.1): a
//!   stream opens with the client's HEADERS and closes with the client's RST_STREAM or with the
//!   server's END_STREAM or RST_STREAM. Each new stream is judged against the limit in force when
//!   its HEADERS arrived, so a client that resets a stream and then opens another is within a
//!   limit of one, however late the request handler notices the reset;
//! - for a stream the connection task refuses (over the limit), it writes RST_STREAM
//!   (REFUSED_STREAM) itself at the next frame boundary, ahead of anything `h2` writes next (an
//!   abrupt GOAWAY from `h2` would otherwise close the connection with the reset still queued),
//!   drops the reset `h2` may write for the same stream later (one RST_STREAM per stream), and
//!   lowers the last stream id of the stream-limit GOAWAY below the refused stream: that stream
//!   was never processed, and the client may retry it (RFC 9113 §5.1.2, §6.8).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const FRAME_HEADER: usize = 9;
const TYPE_DATA: u8 = 0x0;
const TYPE_HEADERS: u8 = 0x1;
const TYPE_RST_STREAM: u8 = 0x3;
const TYPE_SETTINGS: u8 = 0x4;
const TYPE_PUSH_PROMISE: u8 = 0x5;
const TYPE_PING: u8 = 0x6;
const TYPE_GOAWAY: u8 = 0x7;
const TYPE_CONTINUATION: u8 = 0x9;
const FLAG_ACK: u8 = 0x1;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
/// The RST_STREAM and GOAWAY error code REFUSED_STREAM (RFC 9113 §7).
const REFUSED_STREAM: u32 = 0x7;
const PREFACE_LEN: usize = 24;
/// Above this many buffered outbound bytes, writes wait for the socket.
const HIGH_WATER: usize = 256 * 1024;

/// One SETTINGS frame sent and not yet acknowledged.
#[derive(Debug, Clone, Copy)]
struct Sent {
    /// Injected by this layer (its ACK must not reach `h2`).
    ours: bool,
    /// The MAX_CONCURRENT_STREAMS it carried, if any.
    max_streams: Option<u32>,
}

#[derive(Debug)]
struct State {
    pending: Option<u32>,
    advertised: u32,
    enforced: u32,
    unacked: VecDeque<Sent>,
    goaway_debug: Option<Bytes>,
    /// The client's streams that neither side has closed (open or half-closed: both count
    /// toward the limit).
    open: HashSet<u32>,
    /// The highest stream id the client has opened: a HEADERS frame on a lower id opens nothing.
    last_opened: u32,
    /// Streams whose HEADERS arrived with `enforced` streams already open, until the
    /// connection task refuses them, each with the highest stream the client had opened before it.
    over_limit: HashMap<u32, u32>,
    /// Refused streams whose RST_STREAM(REFUSED_STREAM) this layer writes at the next frame
    /// boundary.
    refusals: Vec<u32>,
    /// Streams this layer reset: the RST_STREAM `h2` may write for them is dropped.
    reset_here: HashSet<u32>,
    /// The highest last stream id any GOAWAY sent from now on may carry.
    goaway_last: Option<u32>,
    /// The most streams open at once.
    peak: u32,
}

/// The per-connection handle shared by the frame layer, the connection task and request handlers.
#[derive(Debug)]
pub(crate) struct StreamControl {
    state: Mutex<State>,
    /// PING frames received (not ACKs).
    pings: AtomicU32,
    /// Last inbound HEADERS or PING, for the idle timeout.
    last_activity: Mutex<tokio::time::Instant>,
}

impl StreamControl {
    /// `initial` is what the preface SETTINGS advertise. Nothing is enforced before the client
    /// acknowledges it.
    pub(crate) fn new(initial: u32) -> Self {
        StreamControl {
            state: Mutex::new(State {
                pending: None,
                advertised: initial,
                enforced: u32::MAX,
                unacked: VecDeque::new(),
                goaway_debug: None,
                open: HashSet::new(),
                last_opened: 0,
                over_limit: HashMap::new(),
                refusals: Vec::new(),
                reset_here: HashSet::new(),
                goaway_last: None,
                peak: 0,
            }),
            pings: AtomicU32::new(0),
            last_activity: Mutex::new(tokio::time::Instant::now()),
        }
    }

    /// PING frames the client sent.
    pub(crate) fn pings(&self) -> u32 {
        self.pings.load(Ordering::Relaxed)
    }

    /// When the client last sent a request or a PING.
    pub(crate) fn last_activity(&self) -> tokio::time::Instant {
        *self.last_activity.lock()
    }

    /// Advertises a new MAX_CONCURRENT_STREAMS at the next outbound frame boundary.
    pub(crate) fn advertise(&self, max: u32) {
        let mut st = self.state.lock();
        if st.advertised != max {
            st.advertised = max;
            st.pending = Some(max);
        }
    }

    /// The limit most recently advertised (or about to be).
    pub(crate) fn advertised(&self) -> u32 {
        self.state.lock().advertised
    }

    /// JSON debug data appended to every GOAWAY sent from now on.
    pub(crate) fn set_goaway_debug(&self, data: Bytes) {
        self.state.lock().goaway_debug = Some(data);
    }

    /// The client's streams open now (as far as the bytes read and written so far go).
    pub(crate) fn active(&self) -> u32 {
        u32::try_from(self.state.lock().open.len()).unwrap_or(u32::MAX)
    }

    /// The most streams that were open at once.
    pub(crate) fn peak(&self) -> u32 {
        self.state.lock().peak
    }

    /// Whether `stream` was opened over the limit (forgotten once asked: ask once per stream):
    /// `Some(below)`, `below` being the highest stream the client had opened before it (0 if
    /// none), the last stream id of a GOAWAY that leaves `stream` to be retried.
    pub(crate) fn take_over_limit(&self, stream: u32) -> Option<u32> {
        self.state.lock().over_limit.remove(&stream)
    }

    /// Refuses `stream`: RST_STREAM(REFUSED_STREAM) at the next outbound frame boundary, before
    /// any frame `h2` writes after this call (a GOAWAY included), and never a second reset for it.
    pub(crate) fn refuse(&self, stream: u32) {
        let mut st = self.state.lock();
        if st.reset_here.insert(stream) {
            st.refusals.push(stream);
        }
    }

    /// Caps the last stream id of every GOAWAY sent from now on at `last` (RFC 9113 §6.8: the
    /// streams above it were not processed, and the client may retry them).
    pub(crate) fn cap_goaway_last_stream(&self, last: u32) {
        let mut st = self.state.lock();
        st.goaway_last = Some(st.goaway_last.map_or(last, |cap| cap.min(last)));
    }

    /// An inbound HEADERS frame: opens `stream` if it is new.
    fn headers_in(&self, stream: u32) {
        let mut st = self.state.lock();
        // Client streams are odd and increase; anything else is trailers, or h2's to refuse.
        if stream.is_multiple_of(2) || stream <= st.last_opened {
            return;
        }
        let before = std::mem::replace(&mut st.last_opened, stream);
        let over = u32::try_from(st.open.len()).unwrap_or(u32::MAX) >= st.enforced;
        st.open.insert(stream);
        if over {
            st.over_limit.insert(stream, before);
        }
        st.peak = st
            .peak
            .max(u32::try_from(st.open.len()).unwrap_or(u32::MAX));
    }

    /// An inbound RST_STREAM, or an outbound END_STREAM or RST_STREAM: `stream` is closed.
    fn closed(&self, stream: u32) {
        self.state.lock().open.remove(&stream);
    }
}

/// The stream id in a frame header.
fn stream_id(header: &[u8]) -> u32 {
    u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff
}

/// The I/O object handed to `h2`: TLS below, frame rewriting in between.
pub(crate) struct FrameIo<T> {
    io: T,
    ctl: std::sync::Arc<StreamControl>,
    // outbound
    w_in: BytesMut,
    w_out: BytesMut,
    preface_seen: bool,
    in_header_block: bool,
    // inbound
    r_raw: BytesMut,
    r_ready: BytesMut,
    r_preface_left: usize,
    r_pass_left: usize,
    r_eof: bool,
}

impl<T> FrameIo<T> {
    pub(crate) fn new(io: T, ctl: std::sync::Arc<StreamControl>) -> Self {
        FrameIo {
            io,
            ctl,
            w_in: BytesMut::new(),
            w_out: BytesMut::new(),
            preface_seen: false,
            in_header_block: false,
            r_raw: BytesMut::new(),
            r_ready: BytesMut::new(),
            r_preface_left: PREFACE_LEN,
            r_pass_left: 0,
            r_eof: false,
        }
    }

    fn inject_pending(&mut self) {
        if self.in_header_block {
            return;
        }
        let mut st = self.ctl.state.lock();
        for stream in std::mem::take(&mut st.refusals) {
            if !st.open.remove(&stream) {
                // The client reset it first: no RST_STREAM answers a RST_STREAM (RFC 9113
                // §5.4.2), and `h2` will not write one either.
                st.reset_here.remove(&stream);
                continue;
            }
            self.w_out.put_slice(&[0, 0, 4, TYPE_RST_STREAM, 0]);
            self.w_out.put_u32(stream);
            self.w_out.put_u32(REFUSED_STREAM);
        }
        if let Some(max) = st.pending.take() {
            self.w_out
                .put_slice(&[0, 0, 6, TYPE_SETTINGS, 0, 0, 0, 0, 0]);
            self.w_out.put_u16(SETTINGS_MAX_CONCURRENT_STREAMS);
            self.w_out.put_u32(max);
            st.unacked.push_back(Sent {
                ours: true,
                max_streams: Some(max),
            });
            if max > st.enforced {
                st.enforced = max;
            }
        }
    }

    /// Moves every complete frame from `w_in` to `w_out`, rewriting and injecting on the way.
    fn process_out(&mut self) {
        loop {
            if self.w_in.len() < FRAME_HEADER {
                break;
            }
            let len = u32::from_be_bytes([0, self.w_in[0], self.w_in[1], self.w_in[2]]) as usize;
            if self.w_in.len() < FRAME_HEADER + len {
                break;
            }
            self.inject_pending();
            let frame = self.w_in.split_to(FRAME_HEADER + len);
            let (kind, flags) = (frame[3], frame[4]);
            // Closed on the server's side before the client can see it (the bytes are not sent
            // yet), so the client's next HEADERS always finds the count already lowered.
            let ends = matches!(kind, TYPE_HEADERS | TYPE_DATA) && flags & FLAG_END_STREAM != 0;
            if ends || kind == TYPE_RST_STREAM {
                self.ctl.closed(stream_id(&frame));
            }
            match kind {
                // This layer reset the stream already (`refuse`): one RST_STREAM per stream.
                TYPE_RST_STREAM if self.ctl.state.lock().reset_here.remove(&stream_id(&frame)) => {}
                TYPE_SETTINGS if flags & FLAG_ACK == 0 => self.settings_out(frame),
                TYPE_GOAWAY => self.goaway_out(frame),
                _ => self.w_out.extend_from_slice(&frame),
            }
            self.in_header_block = match kind {
                TYPE_HEADERS | TYPE_PUSH_PROMISE | TYPE_CONTINUATION => {
                    flags & FLAG_END_HEADERS == 0
                }
                _ => self.in_header_block,
            };
        }
        if self.w_in.is_empty() {
            self.inject_pending();
        }
    }

    fn settings_out(&mut self, frame: BytesMut) {
        let mut st = self.ctl.state.lock();
        if self.preface_seen {
            st.unacked.push_back(Sent {
                ours: false,
                max_streams: None,
            });
            drop(st);
            self.w_out.extend_from_slice(&frame);
            return;
        }
        // The server preface: advertise the initial limit instead of h2's.
        self.preface_seen = true;
        let initial = st.advertised;
        st.pending = None;
        st.unacked.push_back(Sent {
            ours: false,
            max_streams: Some(initial),
        });
        drop(st);
        let mut payload = BytesMut::new();
        for param in frame[FRAME_HEADER..].chunks_exact(6) {
            if u16::from_be_bytes([param[0], param[1]]) != SETTINGS_MAX_CONCURRENT_STREAMS {
                payload.extend_from_slice(param);
            }
        }
        payload.put_u16(SETTINGS_MAX_CONCURRENT_STREAMS);
        payload.put_u32(initial);
        self.put_frame(TYPE_SETTINGS, 0, &frame[5..9], &payload);
    }

    fn goaway_out(&mut self, frame: BytesMut) {
        let (debug, cap) = {
            let st = self.ctl.state.lock();
            (st.goaway_debug.clone(), st.goaway_last)
        };
        if frame.len() < FRAME_HEADER + 8 || (debug.is_none() && cap.is_none()) {
            self.w_out.extend_from_slice(&frame);
            return;
        }
        let mut payload = BytesMut::from(&frame[FRAME_HEADER..]);
        if let Some(cap) = cap {
            let last = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
            payload[..4].copy_from_slice(&(last & 0x7fff_ffff).min(cap).to_be_bytes());
        }
        if let Some(debug) = debug {
            payload.truncate(8);
            payload.extend_from_slice(&debug);
        }
        self.put_frame(TYPE_GOAWAY, frame[4], &frame[5..9], &payload);
    }

    fn put_frame(&mut self, kind: u8, flags: u8, stream: &[u8], payload: &[u8]) {
        let len = (payload.len() as u32).to_be_bytes();
        self.w_out.put_slice(&[len[1], len[2], len[3], kind, flags]);
        self.w_out.put_slice(stream);
        self.w_out.put_slice(payload);
    }

    /// Moves bytes from `r_raw` to `r_ready`, dropping ACKs of injected SETTINGS.
    fn process_in(&mut self) {
        loop {
            if self.r_preface_left > 0 {
                let n = self.r_preface_left.min(self.r_raw.len());
                if n == 0 {
                    return;
                }
                self.r_ready.extend_from_slice(&self.r_raw.split_to(n));
                self.r_preface_left -= n;
                continue;
            }
            if self.r_pass_left > 0 {
                let n = self.r_pass_left.min(self.r_raw.len());
                if n == 0 {
                    return;
                }
                self.r_ready.extend_from_slice(&self.r_raw.split_to(n));
                self.r_pass_left -= n;
                continue;
            }
            if self.r_raw.len() < FRAME_HEADER {
                return;
            }
            let len = u32::from_be_bytes([0, self.r_raw[0], self.r_raw[1], self.r_raw[2]]) as usize;
            let (kind, flags) = (self.r_raw[3], self.r_raw[4]);
            if kind == TYPE_PING && flags & FLAG_ACK == 0 {
                self.ctl.pings.fetch_add(1, Ordering::Relaxed);
            }
            if kind == TYPE_PING || kind == TYPE_HEADERS {
                *self.ctl.last_activity.lock() = tokio::time::Instant::now();
            }
            match kind {
                TYPE_HEADERS => self.ctl.headers_in(stream_id(&self.r_raw)),
                TYPE_RST_STREAM => self.ctl.closed(stream_id(&self.r_raw)),
                _ => {}
            }
            if kind == TYPE_SETTINGS && flags & FLAG_ACK != 0 && len == 0 && self.settings_acked() {
                self.r_raw.advance(FRAME_HEADER);
                continue;
            }
            self.r_ready
                .extend_from_slice(&self.r_raw.split_to(FRAME_HEADER));
            self.r_pass_left = len;
        }
    }

    /// Records one SETTINGS ACK; true when it acknowledges a frame this layer injected.
    fn settings_acked(&self) -> bool {
        let mut st = self.ctl.state.lock();
        let Some(sent) = st.unacked.pop_front() else {
            return false;
        };
        if let Some(max) = sent.max_streams {
            // The client now applies `max`; raises still in flight count already.
            let in_flight = st
                .unacked
                .iter()
                .filter_map(|s| s.max_streams)
                .filter(|&m| m > max)
                .max();
            st.enforced = in_flight.unwrap_or(max);
        }
        sent.ours
    }
}

impl<T: AsyncWrite + Unpin> FrameIo<T> {
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.w_out.is_empty() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.w_out))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.w_out.advance(n);
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for FrameIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.r_ready.is_empty() {
                let n = this.r_ready.len().min(buf.remaining());
                buf.put_slice(&this.r_ready.split_to(n));
                return Poll::Ready(Ok(()));
            }
            if this.r_eof {
                // Pass on whatever partial frame is left and let h2 judge it.
                if !this.r_raw.is_empty() {
                    let rest = this.r_raw.split();
                    this.r_ready.extend_from_slice(&rest);
                    continue;
                }
                return Poll::Ready(Ok(()));
            }
            let mut tmp = [0u8; 16 * 1024];
            let mut rb = ReadBuf::new(&mut tmp);
            ready!(Pin::new(&mut this.io).poll_read(cx, &mut rb))?;
            if rb.filled().is_empty() {
                this.r_eof = true;
            } else {
                this.r_raw.extend_from_slice(rb.filled());
                this.process_in();
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for FrameIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.w_out.len() >= HIGH_WATER {
            ready!(this.poll_drain(cx))?;
        }
        this.w_in.extend_from_slice(buf);
        this.process_out();
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.process_out();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.process_out();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const END_HEADERS_AND_STREAM: u8 = FLAG_END_HEADERS | FLAG_END_STREAM;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = (payload.len() as u32).to_be_bytes();
        let mut f = vec![len[1], len[2], len[3], kind, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// A frame layer advertising `limit`, after the client preface and the client's ACK of the
    /// server's SETTINGS: `limit` is enforced.
    fn layer(limit: u32) -> FrameIo<()> {
        let mut io = FrameIo::new((), Arc::new(StreamControl::new(limit)));
        io.w_in.extend_from_slice(&frame(TYPE_SETTINGS, 0, 0, &[]));
        io.process_out();
        io.r_raw
            .extend_from_slice(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        io.r_raw
            .extend_from_slice(&frame(TYPE_SETTINGS, FLAG_ACK, 0, &[]));
        io.process_in();
        assert_eq!(io.ctl.state.lock().enforced, limit);
        io
    }

    fn inbound(io: &mut FrameIo<()>, frames: &[Vec<u8>]) {
        for f in frames {
            io.r_raw.extend_from_slice(f);
        }
        io.process_in();
    }

    fn outbound(io: &mut FrameIo<()>, f: Vec<u8>) {
        io.w_in.extend_from_slice(&f);
        io.process_out();
    }

    #[test]
    fn a_stream_the_client_reset_is_closed_before_its_next_headers() {
        let mut io = layer(1);
        inbound(
            &mut io,
            &[
                frame(TYPE_HEADERS, END_HEADERS_AND_STREAM, 1, b"h"),
                frame(TYPE_RST_STREAM, 0, 1, &8u32.to_be_bytes()),
                frame(TYPE_HEADERS, END_HEADERS_AND_STREAM, 3, b"h"),
            ],
        );
        assert_eq!(io.ctl.take_over_limit(1), None);
        assert_eq!(io.ctl.take_over_limit(3), None);
        assert_eq!((io.ctl.active(), io.ctl.peak()), (1, 1));
    }

    #[test]
    fn a_second_open_stream_at_a_limit_of_one_is_over_it() {
        let mut io = layer(1);
        inbound(
            &mut io,
            &[
                frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, b"h"),
                frame(TYPE_HEADERS, FLAG_END_HEADERS, 3, b"h"),
            ],
        );
        assert_eq!(io.ctl.take_over_limit(1), None);
        assert_eq!(
            io.ctl.take_over_limit(3),
            Some(1),
            "stream 1 was opened before it"
        );
        assert_eq!(io.ctl.take_over_limit(3), None, "asked once");
        // Refusing it (RST_STREAM out) closes it.
        outbound(&mut io, frame(TYPE_RST_STREAM, 0, 3, &7u32.to_be_bytes()));
        assert_eq!(io.ctl.active(), 1);
    }

    #[test]
    fn the_servers_end_stream_closes_and_trailers_open_nothing() {
        let mut io = layer(1);
        inbound(&mut io, &[frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, b"h")]);
        // Trailers on the open stream.
        inbound(
            &mut io,
            &[frame(TYPE_HEADERS, END_HEADERS_AND_STREAM, 1, b"t")],
        );
        assert_eq!(io.ctl.active(), 1);
        // The answer: HEADERS without END_STREAM keeps it open, the last DATA closes it.
        outbound(&mut io, frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, b"r"));
        assert_eq!(io.ctl.active(), 1);
        outbound(&mut io, frame(TYPE_DATA, FLAG_END_STREAM, 1, b"{}"));
        assert_eq!(io.ctl.active(), 0);
        // A late HEADERS on the closed stream opens nothing; the next stream is within the limit.
        inbound(
            &mut io,
            &[
                frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, b"h"),
                frame(TYPE_HEADERS, FLAG_END_HEADERS, 3, b"h"),
            ],
        );
        assert_eq!(io.ctl.take_over_limit(3), None);
        assert_eq!(io.ctl.active(), 1);
    }

    #[test]
    fn nothing_is_over_the_limit_before_the_client_acknowledges_it() {
        let mut io = FrameIo::new((), Arc::new(StreamControl::new(1)));
        io.r_raw
            .extend_from_slice(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        inbound(
            &mut io,
            &[
                frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, b"h"),
                frame(TYPE_HEADERS, FLAG_END_HEADERS, 3, b"h"),
            ],
        );
        assert_eq!(io.ctl.take_over_limit(3), None);
        assert_eq!(io.ctl.peak(), 2);
    }

    #[test]
    fn a_refused_stream_is_reset_before_the_goaway_which_leaves_it_to_retry() {
        let mut io = layer(2);
        inbound(
            &mut io,
            &[
                frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, b"h"),
                frame(TYPE_HEADERS, FLAG_END_HEADERS, 3, b"h"),
                frame(TYPE_HEADERS, FLAG_END_HEADERS, 5, b"h"),
            ],
        );
        let below = io.ctl.take_over_limit(5);
        assert_eq!(below, Some(3));
        io.ctl.refuse(5);
        io.ctl.cap_goaway_last_stream(3);
        io.ctl.set_goaway_debug(Bytes::from_static(b"{}"));
        io.w_out.clear();
        // What h2 writes after an abrupt shutdown: GOAWAY naming the stream it accepted last.
        let mut goaway = 5u32.to_be_bytes().to_vec();
        goaway.extend_from_slice(&7u32.to_be_bytes());
        outbound(&mut io, frame(TYPE_GOAWAY, 0, 0, &goaway));
        let mut expected = frame(TYPE_RST_STREAM, 0, 5, &7u32.to_be_bytes());
        let mut capped = 3u32.to_be_bytes().to_vec();
        capped.extend_from_slice(&7u32.to_be_bytes());
        capped.extend_from_slice(b"{}");
        expected.extend(frame(TYPE_GOAWAY, 0, 0, &capped));
        assert_eq!(&io.w_out[..], &expected[..]);
        assert_eq!(io.ctl.active(), 2);
        // h2's own reset of the stream, should it come, is not sent twice.
        io.w_out.clear();
        outbound(&mut io, frame(TYPE_RST_STREAM, 0, 5, &7u32.to_be_bytes()));
        assert!(io.w_out.is_empty());
    }

    #[test]
    fn a_stream_the_client_reset_first_is_not_reset_back() {
        let mut io = layer(1);
        inbound(
            &mut io,
            &[
                frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, b"h"),
                frame(TYPE_HEADERS, FLAG_END_HEADERS, 3, b"h"),
                // The client gives up on the over-limit stream before the server refuses it.
                frame(TYPE_RST_STREAM, 0, 3, &8u32.to_be_bytes()),
            ],
        );
        assert_eq!(io.ctl.take_over_limit(3), Some(1));
        io.ctl.refuse(3);
        io.w_out.clear();
        outbound(&mut io, frame(TYPE_PING, 0, 0, &[0; 8]));
        // Only the PING: no RST_STREAM answers the client's (RFC 9113 §5.4.2).
        assert_eq!(&io.w_out[..], &frame(TYPE_PING, 0, 0, &[0; 8])[..]);
        assert!(io.ctl.state.lock().reset_here.is_empty());
    }
}
