//! The frame codec: `[u32 big-endian length][u8 version][bincode body]`.
//!
//! Every decoder here rejects bad input with an error, never a panic: lengths are checked
//! against a cap before any allocation, and bincode decodes with a byte limit so a hostile
//! length prefix inside the body cannot make us allocate gigabytes.

use bincode::Options;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Version of the framing and of every message encoded with it.
pub const FRAME_VERSION: u8 = 1;
/// Hard cap on one frame. Data is capped lower by server config; snapshot chunks stay below it.
pub const MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {0} bytes exceeds the limit of {MAX_FRAME_BYTES} bytes")]
    TooLarge(usize),
    #[error("empty frame")]
    Empty,
    #[error("unsupported frame version {0} (this build speaks {FRAME_VERSION})")]
    Version(u8),
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("stream closed before a complete frame arrived")]
    Truncated,
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

fn options(limit: usize) -> impl Options {
    bincode::DefaultOptions::new().with_limit(limit as u64)
}

/// Encode `msg` as one complete frame, length prefix included.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let body = options(MAX_FRAME_BYTES).serialize(msg).map_err(|e| FrameError::Malformed(e.to_string()))?;
    let len = body.len() + 1;
    if len > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge(len));
    }
    let mut out = Vec::with_capacity(4 + len);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    out.push(FRAME_VERSION);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decode the part of a frame after its length prefix (version byte + body).
pub fn decode_body<T: DeserializeOwned>(buf: &[u8]) -> Result<T, FrameError> {
    let (&version, body) = buf.split_first().ok_or(FrameError::Empty)?;
    if version != FRAME_VERSION {
        return Err(FrameError::Version(version));
    }
    options(body.len()).deserialize(body).map_err(|e| FrameError::Malformed(e.to_string()))
}

/// Decode only the start of a frame's body (version byte + body) as `T`, ignoring what
/// follows: to find a malformed frame's leading field (a multiplexed request's tag) and
/// answer it.
pub fn decode_prefix<T: DeserializeOwned>(buf: &[u8]) -> Result<T, FrameError> {
    let (&version, body) = buf.split_first().ok_or(FrameError::Empty)?;
    if version != FRAME_VERSION {
        return Err(FrameError::Version(version));
    }
    options(body.len()).allow_trailing_bytes().deserialize(body).map_err(|e| FrameError::Malformed(e.to_string()))
}

/// Read one frame from `r`. A stream that ends before the frame is complete is `Truncated`.
pub async fn read<T: DeserializeOwned, R: AsyncRead + Unpin>(r: &mut R) -> Result<T, FrameError> {
    decode_body(&read_raw(r).await?)
}

/// Read one frame from `r` without decoding it: its version byte and body.
pub async fn read_raw<R: AsyncRead + Unpin>(r: &mut R) -> Result<Vec<u8>, FrameError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await.map_err(eof_is_truncated)?;
    let len = u32::from_be_bytes(len) as usize;
    if len == 0 {
        return Err(FrameError::Empty);
    }
    if len > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge(len));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await.map_err(eof_is_truncated)?;
    Ok(buf)
}

/// Read the last frame of a stream: one frame, then a look for the stream's end.
///
/// The look matters for QUIC: a receive stream dropped before its end was read makes quinn
/// tell the sender to stop (a STOP_SENDING frame), and the sender may answer with a reset.
/// On a one-request-one-reply stream that is one or two spurious control frames, often
/// packets of their own, per request. The sender finishes the stream with the frame, so its
/// end has nearly always arrived with it; the look does not wait (a late end is let go, as
/// before), and it never changes what is returned.
pub async fn read_last<T: DeserializeOwned, R: AsyncRead + Unpin>(r: &mut R) -> Result<T, FrameError> {
    let msg = read(r).await?;
    look_for_end(r);
    Ok(msg)
}

/// Poll `r` once for its end without waiting: true when the end has been read.
pub fn look_for_end<R: AsyncRead + Unpin>(r: &mut R) -> bool {
    let mut byte = [0u8; 1];
    let mut buf = tokio::io::ReadBuf::new(&mut byte);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    matches!(
        std::pin::Pin::new(r).poll_read(&mut cx, &mut buf),
        std::task::Poll::Ready(Ok(())) if buf.filled().is_empty()
    )
}

/// Write one frame to `w`.
pub async fn write<T: Serialize, W: AsyncWrite + Unpin>(w: &mut W, msg: &T) -> Result<(), FrameError> {
    let bytes = encode(msg)?;
    w.write_all(&bytes).await?;
    Ok(())
}

fn eof_is_truncated(e: std::io::Error) -> FrameError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        FrameError::Truncated
    } else {
        FrameError::Io(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Consistency, Request, RequestFrame};

    fn sample() -> RequestFrame {
        RequestFrame {
            id: 7,
            done_below: 3,
            min_index: 9,
            body: Request::Get { path: "/a/b".into(), consistency: Consistency::Serializable, watch: false },
        }
    }

    #[tokio::test]
    async fn roundtrip() {
        let bytes = encode(&sample()).expect("encode");
        let got: RequestFrame = read(&mut bytes.as_slice()).await.expect("decode");
        assert_eq!(got, sample());
    }

    #[tokio::test]
    async fn the_last_frame_is_read_and_its_end_seen() {
        let bytes = encode(&sample()).expect("encode");
        let mut r = bytes.as_slice();
        let got: RequestFrame = read_last(&mut r).await.expect("decode");
        assert_eq!(got, sample());
        assert!(r.is_empty());
        assert!(look_for_end(&mut r), "an exhausted reader is at its end");
        // A reader with bytes left is not at its end, and the look does not make that an error.
        let mut two = bytes.clone();
        two.extend_from_slice(&bytes);
        let mut r = two.as_slice();
        let got: RequestFrame = read_last(&mut r).await.expect("decode");
        assert_eq!(got, sample());
        // A reader with nothing yet (still open) is not at its end either.
        let (mut open, _keep) = tokio::io::duplex(64);
        assert!(!look_for_end(&mut open));
    }

    #[tokio::test]
    async fn every_truncation_is_an_error_not_a_panic() {
        let bytes = encode(&sample()).expect("encode");
        for cut in 0..bytes.len() {
            let res: Result<RequestFrame, _> = read(&mut &bytes[..cut]).await;
            assert!(res.is_err(), "prefix of {cut} bytes decoded");
        }
    }

    #[tokio::test]
    async fn hostile_lengths_are_rejected_before_allocating() {
        let huge = (u32::MAX).to_be_bytes();
        let res: Result<RequestFrame, _> = read(&mut huge.as_slice()).await;
        assert!(matches!(res, Err(FrameError::TooLarge(_))));
        // A body whose inner Vec length claims 2^60 bytes.
        let mut body = vec![FRAME_VERSION, 0, 0];
        body.extend_from_slice(&[0xff; 9]);
        let res: Result<RequestFrame, _> = decode_body(&body);
        assert!(matches!(res, Err(FrameError::Malformed(_))));
    }

    #[test]
    fn a_prefix_decodes_from_a_body_whose_rest_is_garbage() {
        let mut body = vec![FRAME_VERSION, 251, 44, 1];
        body.extend_from_slice(&[0xEE; 9]);
        assert_eq!(decode_prefix::<u64>(&body).expect("prefix"), 300);
        assert!(decode_body::<u64>(&body).is_err(), "the whole body is not a u64");
        assert!(matches!(decode_prefix::<u64>(&[2, 1]), Err(FrameError::Version(2))));
        assert!(matches!(decode_prefix::<u64>(&[FRAME_VERSION, 251]), Err(FrameError::Malformed(_))));
        assert!(matches!(decode_prefix::<u64>(&[]), Err(FrameError::Empty)));
    }

    #[test]
    fn wrong_version_and_garbage_are_rejected() {
        let mut bytes = encode(&sample()).expect("encode");
        bytes[4] = 99;
        assert!(matches!(decode_body::<RequestFrame>(&bytes[4..]), Err(FrameError::Version(99))));
        for seed in 0u8..=255 {
            let garbage: Vec<u8> = (0..64).map(|i| seed.wrapping_mul(31).wrapping_add(i)).collect();
            let mut frame = vec![FRAME_VERSION];
            frame.extend_from_slice(&garbage);
            let _ = decode_body::<RequestFrame>(&frame); // must not panic
        }
    }
}
