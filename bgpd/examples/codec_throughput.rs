//! Measures the codec on 1,000,000 IPv4 prefixes: `encode_update_split` into 4096-byte
//! UPDATEs, then `decode_message` over the whole stream. No I/O but stdout.
//!
//! Run: `cargo run --release -p manul-bgpd --example codec_throughput`

use std::net::Ipv4Addr;
use std::time::Instant;

use ipnet::{IpNet, Ipv4Net};
use manul_bgpd::codec::{CodecContext, Decoded, decode_message, encode_update_split};
use manul_bgpd::message::{
    AsPath, AsSegment, Message, Nlri, Origin, PathAttributes, SegmentKind, Update,
};

const PREFIXES: u32 = 1_000_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let nlri: Vec<Nlri> = (0..PREFIXES)
        .map(|i| {
            Ok(Nlri {
                prefix: IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + (i << 8)), 24)?),
                path_id: None,
            })
        })
        .collect::<Result<_, ipnet::PrefixLenError>>()?;
    let update = Update {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath {
                segments: vec![AsSegment {
                    kind: SegmentKind::Sequence,
                    asns: vec![65001],
                }],
            }),
            next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
            communities: vec![0xfde9_0064],
            ..PathAttributes::default()
        },
        nlri,
        ..Update::default()
    };
    let context = CodecContext::four_octet();
    let start = Instant::now();
    let messages = encode_update_split(&update, &context)?;
    let encoded = start.elapsed();
    let stream: Vec<u8> = messages.concat();
    let start = Instant::now();
    let (mut offset, mut decoded) = (0, 0usize);
    while let Some((message, used)) =
        decode_message(stream.get(offset..).unwrap_or_default(), &context)?
    {
        if let Decoded::Message(Message::Update(update)) = message {
            decoded += update.nlri.len();
        }
        offset += used;
    }
    let decode_time = start.elapsed();
    println!(
        "{PREFIXES} prefixes: encode {encoded:?} into {} messages ({} bytes), decode {decode_time:?} ({decoded} prefixes)",
        messages.len(),
        stream.len()
    );
    Ok(())
}
