//! A multiplexed stream: one long-lived bidirectional stream carrying many requests.
//!
//! A stream per request costs each request a stream opened, finished and freed at both ends,
//! and its flow-control credit. On a multiplexed stream a client writes every request of a
//! connection, each with a tag it chose, and the node answers each as it finishes, in any
//! order, with the same tag.
//!
//! It opens with a [`crate::RequestFrame`] whose body is [`crate::Request::Multiplex`], and a
//! [`crate::ResponseFrame`] answering it: `Ok` means the node speaks that version and every
//! later frame is a [`MuxUp`] from the client or a [`MuxDown`] from the node. An error (an
//! older node, another version) ends the stream; a client then sends a stream per request.

use serde::{Deserialize, Serialize};

/// The version of the multiplexed stream this build speaks.
pub const MUX_VERSION: u32 = 1;

/// The most requests one multiplexed stream may have in flight on a node; beyond it the
/// node reads no more until one finishes (flow control then holds the client back).
pub const MUX_MAX_IN_FLIGHT: usize = 1024;

/// A frame from the client on a multiplexed stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MuxUp<R> {
    /// Chosen by the client; unique among its requests in flight on this stream.
    pub tag: u64,
    pub op: MuxOp<R>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MuxOp<R> {
    /// Handle this request and answer it with a [`MuxDown`] of the same tag.
    Request(R),
    /// The client no longer waits for the request with this tag: the node stops working for
    /// it (as for a stream stopped by its client) and sends no answer. A write already in the
    /// log still commits. Unknown tags are ignored.
    Cancel,
}

/// A frame from the node on a multiplexed stream: the answer to the request tagged `tag`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MuxDown<R> {
    pub tag: u64,
    pub frame: R,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame;
    use crate::{Request, RequestFrame, Response, ResponseFrame};

    #[tokio::test]
    async fn frames_round_trip_and_keep_their_wire_shape() {
        let req = RequestFrame { id: 9, done_below: 1, min_index: 2, body: Request::Sync };
        let up = MuxUp { tag: 300, op: MuxOp::Request(req.clone()) };
        // Encoded from a borrowed request, as the client does, decoded as an owned one.
        let borrowed = MuxUp { tag: 300, op: MuxOp::Request(&req) };
        let bytes = frame::encode(&borrowed).expect("encode");
        assert_eq!(frame::read::<MuxUp<RequestFrame>, _>(&mut bytes.as_slice()).await.expect("decode"), up);
        // tag 300 is a varint (251, then u16 LE), then variant 0 (Request), then the frame.
        assert_eq!(&bytes[5..9], &[251, 44, 1, 0]);
        let cancel = frame::encode(&MuxUp::<RequestFrame> { tag: 7, op: MuxOp::Cancel }).expect("encode");
        assert_eq!(cancel, vec![0, 0, 0, 3, frame::FRAME_VERSION, 7, 1]);
        let down =
            MuxDown { tag: 7, frame: ResponseFrame { index: 3, response: Response::Err(crate::Error::NoSession) } };
        let bytes = frame::encode(&down).expect("encode");
        assert_eq!(frame::read::<MuxDown<ResponseFrame>, _>(&mut bytes.as_slice()).await.expect("decode"), down);
    }
}
