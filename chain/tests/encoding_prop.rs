//! Property tests of the canonical encoding: encode → decode → encode gives the same bytes,
//! and arbitrary bytes never panic a decoder.

use lode_chain::encoding::{decode, encode};
use lode_chain::{
    Amount, Block, BlockHeader, CoinbaseData, Hash256, Height, KeyUnlock, OutPoint, PubkeyHash, Transaction, TxIn,
    TxOut, Unlock,
};
use proptest::prelude::*;

fn hash() -> impl Strategy<Value = Hash256> {
    any::<[u8; 32]>().prop_map(Hash256)
}

fn header() -> impl Strategy<Value = BlockHeader> {
    (any::<u32>(), hash(), hash(), any::<u32>(), any::<u32>(), any::<u32>()).prop_map(
        |(version, prev_hash, merkle_root, time, bits, nonce)| BlockHeader {
            version,
            prev_hash,
            merkle_root,
            time,
            bits,
            nonce,
        },
    )
}

fn unlock() -> impl Strategy<Value = Unlock> {
    prop_oneof![
        (
            any::<u32>(),
            any::<[u8; 8]>(),
            proptest::collection::vec(any::<u8>(), 0..80)
        )
            .prop_map(|(h, e, m)| {
                Unlock::Coinbase(CoinbaseData {
                    height: Height(h),
                    extra_nonce: e,
                    message: m,
                })
            }),
        (any::<[u8; 32]>(), proptest::collection::vec(any::<u8>(), 64)).prop_map(|(pubkey, sig)| {
            let mut signature = [0u8; 64];
            signature.copy_from_slice(&sig);
            Unlock::Key(KeyUnlock { pubkey, signature })
        }),
    ]
}

fn tx() -> impl Strategy<Value = Transaction> {
    let input = (hash(), any::<u32>(), unlock()).prop_map(|(txid, index, unlock)| TxIn {
        prev_out: OutPoint { txid, index },
        unlock,
    });
    let output = (any::<u64>(), any::<[u8; 20]>()).prop_map(|(v, p)| TxOut {
        value: Amount(v),
        pubkey_hash: PubkeyHash(p),
    });
    (
        any::<u32>(),
        proptest::collection::vec(input, 0..4),
        proptest::collection::vec(output, 0..4),
        any::<u32>(),
    )
        .prop_map(|(version, inputs, outputs, lock_time)| Transaction {
            version,
            inputs,
            outputs,
            lock_time,
        })
}

proptest! {
    #[test]
    fn header_round_trips(h in header()) {
        let bytes = encode(&h);
        prop_assert_eq!(bytes.len(), 80);
        let back: BlockHeader = decode(&bytes, 80).expect("decodes");
        prop_assert_eq!(back, h);
        prop_assert_eq!(encode(&back), bytes);
    }

    #[test]
    fn block_round_trips_canonically(h in header(), txs in proptest::collection::vec(tx(), 0..5)) {
        let block = Block { header: h, transactions: txs };
        let bytes = encode(&block);
        prop_assert_eq!(bytes.len(), block.size());
        let back = Block::from_bytes(&bytes, bytes.len()).expect("decodes");
        prop_assert_eq!(encode(&back), bytes.clone());
        prop_assert_eq!(back.hash(), block.hash());
        // One byte more is refused as trailing; one byte less is refused as truncated.
        let mut longer = bytes.clone();
        longer.push(0);
        prop_assert!(Block::from_bytes(&longer, longer.len()).is_err());
        prop_assert!(Block::from_bytes(&bytes[..bytes.len() - 1], bytes.len()).is_err());
    }

    #[test]
    fn random_bytes_never_panic_decoders(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Block::from_bytes(&bytes, 4096);
        let _ = decode::<Transaction>(&bytes, 4096);
        let _ = decode::<BlockHeader>(&bytes, 4096);
        let _ = decode::<Vec<Transaction>>(&bytes, 4096);
    }

    #[test]
    fn mutated_valid_encodings_never_panic(txs in proptest::collection::vec(tx(), 1..3), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let mut bytes = encode(&txs);
        for (pos, val) in flips {
            let i = pos % bytes.len();
            bytes[i] = val;
        }
        // Any outcome but a panic or a huge allocation is fine; a success must be canonical.
        if let Ok(back) = decode::<Vec<Transaction>>(&bytes, 1 << 20) {
            prop_assert_eq!(encode(&back), bytes);
        }
    }
}
