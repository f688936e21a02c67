//! Decoder/encoder tests for the Postfix policy protocol: the real Postfix 3.7 request from
//! notes/mail-e2e.md, bounds and resynchronisation, and proptest round-trips.

use mxguard_proto::postfix::{
    DecodeError, Limits, PolicyDecoder, PolicyRequest, ProtocolState, ReplyAction, decode_reply,
    encode_reply,
};
use proptest::prelude::*;

const REAL_RCPT: &str = "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n\
client_address=127.0.0.1\nclient_name=unknown\nclient_port=43648\nreverse_client_name=unknown\n\
server_address=127.0.0.1\nserver_port=24025\nhelo_name=client.test\nsender=alice@client.test\n\
recipient=user@example.test\nrecipient_count=0\nqueue_id=\ninstance=6a4d.6b04a6a4.35e2e.0\nsize=0\n\
etrn_domain=\nstress=\nsasl_method=\nsasl_username=\nsasl_sender=\nccert_subject=\nccert_issuer=\n\
ccert_fingerprint=\nccert_pubkey_fingerprint=\nencryption_protocol=\nencryption_cipher=\n\
encryption_keysize=0\npolicy_context=\n\n";

fn decode_all(dec: &mut PolicyDecoder) -> Vec<Result<PolicyRequest, DecodeError>> {
    let mut out = Vec::new();
    while let Some(r) = dec.next_request() {
        let fatal = matches!(&r, Err(e) if e.is_fatal());
        out.push(r);
        if fatal {
            break;
        }
    }
    out
}

#[test]
fn decodes_the_real_postfix_37_rcpt_request() {
    let mut dec = PolicyDecoder::new(Limits::default());
    dec.feed(REAL_RCPT.as_bytes());
    let r = dec.next_request().unwrap().unwrap();
    assert_eq!(r.protocol_state, ProtocolState::Rcpt);
    assert_eq!(r.client_address, Some("127.0.0.1".parse().unwrap()));
    assert_eq!(r.client_port, Some(43648));
    assert_eq!(r.server_port, Some(24025));
    assert_eq!(r.sender, "alice@client.test");
    assert_eq!(r.recipient, "user@example.test");
    assert_eq!(r.instance, "6a4d.6b04a6a4.35e2e.0");
    assert_eq!(r.client_name, "unknown");
    assert!(r.unknown.is_empty());
    assert!(dec.next_request().is_none());
    assert!(!dec.is_mid_request());
    // Encoding it again gives Postfix's exact bytes.
    let mut out = Vec::new();
    r.encode(&mut out);
    assert_eq!(String::from_utf8(out).unwrap(), REAL_RCPT);
}

#[test]
fn byte_at_a_time_and_many_per_feed() {
    let mut dec = PolicyDecoder::new(Limits::default());
    let mut got = 0;
    for b in REAL_RCPT.as_bytes() {
        dec.feed(&[*b]);
        while let Some(r) = dec.next_request() {
            r.unwrap();
            got += 1;
        }
    }
    assert_eq!(got, 1);
    let three = REAL_RCPT.repeat(3);
    dec.feed(three.as_bytes());
    assert_eq!(decode_all(&mut dec).len(), 3);
}

#[test]
fn unknown_attributes_and_crlf_are_kept() {
    let mut dec = PolicyDecoder::new(Limits::default());
    dec.feed(b"request=smtpd_access_policy\r\nfuture_thing=a=b\r\nmail_version=3.9.0\r\n\r\n");
    let r = dec.next_request().unwrap().unwrap();
    assert_eq!(
        r.unknown,
        vec![("future_thing".to_owned(), "a=b".to_owned())]
    );
    assert_eq!(r.mail_version.as_deref(), Some("3.9.0"));
}

#[test]
fn malformed_line_is_reported_at_request_end_then_resyncs() {
    let mut dec = PolicyDecoder::new(Limits::default());
    dec.feed(b"request=smtpd_access_policy\ngarbage without equals\nsender=a@b\n\n");
    dec.feed(REAL_RCPT.as_bytes());
    let all = decode_all(&mut dec);
    assert_eq!(all.len(), 2);
    assert_eq!(all[0], Err(DecodeError::MalformedLine { line: 2 }));
    assert!(all[1].is_ok());
}

#[test]
fn bad_values_and_request_types() {
    let mut dec = PolicyDecoder::new(Limits::default());
    dec.feed(b"request=smtpd_access_policy\nclient_address=not-an-ip\n\n");
    dec.feed(b"request=other\n\n");
    dec.feed(b"sender=x\n\n");
    dec.feed(b"\n");
    dec.feed(b"request=smtpd_access_policy\nsize=12x\n\n");
    dec.feed(b"=value\nrequest=smtpd_access_policy\n\n");
    let all = decode_all(&mut dec);
    assert_eq!(
        all,
        vec![
            Err(DecodeError::InvalidValue {
                name: "client_address".into()
            }),
            Err(DecodeError::UnsupportedRequest {
                request: "other".into()
            }),
            Err(DecodeError::MissingRequest),
            Err(DecodeError::EmptyRequest),
            Err(DecodeError::InvalidValue {
                name: "size".into()
            }),
            Err(DecodeError::MalformedLine { line: 1 }),
        ]
    );
}

#[test]
fn long_line_is_discarded_without_buffering_and_resyncs() {
    let limits = Limits::default();
    let mut dec = PolicyDecoder::new(limits);
    dec.feed(b"request=smtpd_access_policy\nsender=");
    let chunk = vec![b'x'; 64 * 1024];
    for _ in 0..16 {
        // 1 MiB in total
        dec.feed(&chunk);
        assert!(dec.next_request().is_none());
        assert!(dec.buffered() <= limits.max_line + chunk.len());
    }
    dec.feed(b"\n\n");
    assert_eq!(
        dec.next_request(),
        Some(Err(DecodeError::LineTooLong {
            limit: limits.max_line
        }))
    );
    dec.feed(REAL_RCPT.as_bytes());
    assert!(dec.next_request().unwrap().is_ok());
}

#[test]
fn too_many_attributes_and_too_large_request() {
    let limits = Limits {
        max_attributes: 50,
        max_request_bytes: 2000,
        ..Limits::default()
    };
    let mut dec = PolicyDecoder::new(limits);
    let mut many = String::from("request=smtpd_access_policy\n");
    for i in 0..10_000 {
        many.push_str(&format!("x{i}=1\n"));
    }
    many.push('\n');
    dec.feed(many.as_bytes());
    let mut big = String::from("request=smtpd_access_policy\n");
    for _ in 0..40 {
        big.push_str(&format!("sender={}\n", "y".repeat(100)));
    }
    big.push('\n');
    dec.feed(big.as_bytes());
    dec.feed(REAL_RCPT.as_bytes());
    let all = decode_all(&mut dec);
    assert_eq!(all.len(), 3);
    assert!(matches!(
        all[0],
        Err(DecodeError::RequestTooLarge { .. }) | Err(DecodeError::TooManyAttributes { .. })
    ));
    assert_eq!(all[1], Err(DecodeError::RequestTooLarge { limit: 2000 }));
    assert!(all[2].is_ok());
}

#[test]
fn endless_garbage_becomes_unrecoverable() {
    let limits = Limits {
        max_discard_bytes: 10_000,
        ..Limits::default()
    };
    let mut dec = PolicyDecoder::new(limits);
    dec.feed(b"junk\n");
    for _ in 0..100 {
        dec.feed(b"more junk lines without an end\n");
    }
    // Fewer than the discard limit: still waiting for the request's end.
    assert!(dec.next_request().is_none());
    for _ in 0..1000 {
        dec.feed(b"more junk lines without an end\n");
    }
    let r = dec.next_request();
    assert_eq!(r, Some(Err(DecodeError::Unrecoverable)));
    assert!(DecodeError::Unrecoverable.is_fatal());
}

#[test]
fn reply_encoding_sanitises_text() {
    let mut out = Vec::new();
    encode_reply(
        &ReplyAction::DeferIfPermit("greylisted\r\nevil=1\0x".into()),
        &mut out,
    );
    assert_eq!(out, b"action=DEFER_IF_PERMIT greylisted  evil=1 x\n\n");
    out.clear();
    encode_reply(&ReplyAction::Dunno, &mut out);
    assert_eq!(out, b"action=DUNNO\n\n");
    out.clear();
    encode_reply(&ReplyAction::Reply("450 4.7.1 later".into()), &mut out);
    assert_eq!(
        decode_reply(&out),
        Some(("450 4.7.1 later".to_owned(), out.len()))
    );
}

#[test]
fn reply_action_parse() {
    assert_eq!(ReplyAction::parse("dunno"), Some(ReplyAction::Dunno));
    assert_eq!(
        ReplyAction::parse("DEFER_IF_PERMIT Service unavailable"),
        Some(ReplyAction::DeferIfPermit("Service unavailable".into()))
    );
    assert_eq!(
        ReplyAction::parse("451 4.3.5 oops").unwrap().to_string(),
        "451 4.3.5 oops"
    );
    assert_eq!(ReplyAction::parse("ACCEPT"), None);
    assert_eq!(ReplyAction::parse("DUNNO extra"), None);
    assert_eq!(ReplyAction::parse("250 fine"), None);
}

fn value() -> impl Strategy<Value = String> {
    // Anything but newline (the protocol cannot carry it).
    "[^\n\r]{0,40}"
}

fn request() -> impl Strategy<Value = PolicyRequest> {
    (
        any::<Option<std::net::IpAddr>>(),
        any::<Option<u16>>(),
        value(),
        value(),
        value(),
        any::<u32>(),
        any::<u64>(),
        prop_oneof![
            Just(ProtocolState::Rcpt),
            Just(ProtocolState::EndOfMessage),
            Just(ProtocolState::Data)
        ],
        proptest::collection::vec(("z[a-z_]{0,10}", value()), 0..4),
    )
        .prop_map(
            |(ip, port, sender, rcpt, sasl, count, size, state, unknown)| {
                let mut r = PolicyRequest::rcpt(
                    std::net::Ipv4Addr::new(192, 0, 2, 1).into(),
                    &sender,
                    &rcpt,
                );
                r.client_address = ip;
                r.client_port = port;
                r.sasl_username = sasl;
                r.recipient_count = count;
                r.size = size;
                r.protocol_state = state;
                r.unknown = unknown;
                r
            },
        )
}

proptest! {
    #[test]
    fn request_round_trips(reqs in proptest::collection::vec(request(), 1..5), split in 1usize..700) {
        let mut wire = Vec::new();
        for r in &reqs { r.encode(&mut wire); }
        let mut dec = PolicyDecoder::new(Limits::default());
        let mut got = Vec::new();
        for chunk in wire.chunks(split) {
            dec.feed(chunk);
            while let Some(r) = dec.next_request() { got.push(r.unwrap()); }
        }
        prop_assert_eq!(got, reqs);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_stay_bounded(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let limits = Limits { max_line: 64, max_attributes: 8, max_request_bytes: 256, max_discard_bytes: 1024 };
        let mut dec = PolicyDecoder::new(limits);
        for chunk in bytes.chunks(97) {
            dec.feed(chunk);
            while let Some(r) = dec.next_request() {
                if matches!(r, Err(ref e) if e.is_fatal()) { break; }
            }
            prop_assert!(dec.buffered() <= 64 + 97);
        }
    }

    #[test]
    fn reply_text_never_breaks_framing(text in ".{0,80}") {
        let mut out = Vec::new();
        encode_reply(&ReplyAction::Reject(text), &mut out);
        let (_, used) = decode_reply(&out).unwrap();
        prop_assert_eq!(used, out.len());
    }
}
