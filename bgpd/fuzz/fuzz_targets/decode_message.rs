//! libFuzzer target: `decode_message` on arbitrary bytes, under a context chosen by the
//! first byte; whatever decodes is encoded again. Neither may panic. No I/O.
#![no_main]

use libfuzzer_sys::fuzz_target;
use manul_bgpd::codec::{CodecContext, Decoded, decode_message, encode_message};
use manul_bgpd::message::{Family, Message};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let families = |bit: u8| {
        if selector & bit != 0 {
            vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]
        } else {
            Vec::new()
        }
    };
    let context = CodecContext {
        four_octet_as: selector & 1 != 0,
        add_path_receive: families(2),
        add_path_send: families(2),
        extended_next_hop: selector & 4 != 0,
    };
    let mut rest = bytes;
    while let Ok(Some((decoded, consumed))) = decode_message(rest, &context) {
        let message = match decoded {
            Decoded::Message(message) => message,
            Decoded::TreatAsWithdraw { update, .. } => Message::Update(update),
        };
        let _ = encode_message(&message, &context);
        if let Message::Update(update) = &message {
            let _ = manul_bgpd::codec::encode_update_split(update, &context);
        }
        rest = rest.get(consumed..).unwrap_or_default();
    }
});
