//! Append / sync / reopen against a model.

mod common;

use capstan_wal::{Record, Wal, WalConfig, WalError, SEGMENT_BYTES_DEFAULT};
use common::*;

#[test]
fn empty_open_creates_first_segment_and_reopens() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("member").join("wal");
        let (wal, rec) = Wal::open(config(&dir)).await.unwrap();
        assert!(rec.records.is_empty());
        assert!(rec.torn_tail.is_none());
        assert_eq!(wal.segment_count(), 1);
        assert_eq!(wal.total_bytes(), 0);
        assert_eq!(
            std::fs::metadata(segment_path(&dir, 1)).unwrap().len(),
            TEST_SEGMENT_BYTES
        );
        drop(wal);
        let (wal, rec) = Wal::open(config(&dir)).await.unwrap();
        assert!(rec.records.is_empty());
        assert!(rec.torn_tail.is_none());
        assert_eq!(wal.segment_count(), 1);
    });
}

#[test]
fn default_config() {
    let c = WalConfig::new("/x/member/wal");
    assert_eq!(c.segment_bytes, SEGMENT_BYTES_DEFAULT);
    assert_eq!(SEGMENT_BYTES_DEFAULT, 64 * 1024 * 1024);
}

#[test]
fn append_sync_reopen_equals_model() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let mut rng = Lcg::new(1);
        let model: Vec<Record> = (0..200).map(|_| rng.record(300)).collect();
        {
            let (mut wal, rec) = Wal::open(config(tmp.path())).await.unwrap();
            assert!(rec.records.is_empty());
            for r in &model[..100] {
                wal.append(r.kind, &r.payload).unwrap();
            }
            assert!(wal.pending_bytes() > 0);
            let stats = wal.sync().await.unwrap();
            assert_eq!(stats.records, 100);
            assert_eq!(stats.bytes_written, wal.total_bytes());
            // An empty sync is a no-op.
            assert_eq!(wal.sync().await.unwrap().records, 0);
            wal.close().await.unwrap();
        }
        {
            let (mut wal, rec) = Wal::open(config(tmp.path())).await.unwrap();
            assert_eq!(rec.records, model[..100]);
            assert!(rec.torn_tail.is_none());
            append_in_batches(&mut wal, &model[100..], &mut rng, 7).await;
            // Unsynced records are not durable.
            wal.append(1, b"never synced").unwrap();
        }
        let (wal, rec) = Wal::open(config(tmp.path())).await.unwrap();
        assert_eq!(rec.records, model);
        assert!(rec.torn_tail.is_none());
        let layout = layout(&model, TEST_SEGMENT_BYTES);
        let expected_bytes: u64 = layout.iter().map(|p| p.padded_end - p.start).sum();
        assert_eq!(wal.total_bytes(), expected_bytes);
    });
}

#[test]
fn many_syncs_rotate_across_small_segments() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let mut rng = Lcg::new(2);
        let model: Vec<Record> = (0..1500).map(|_| rng.record(900)).collect();
        let layout = layout(&model, TEST_SEGMENT_BYTES);
        let segments = layout.last().unwrap().seq;
        assert!(segments >= 5, "test should span several segments");
        {
            let (mut wal, _) = Wal::open(config(tmp.path())).await.unwrap();
            append_in_batches(&mut wal, &model, &mut rng, 40).await;
            assert_eq!(wal.segment_count() as u64, segments);
        }
        for seq in 1..=segments {
            let len = std::fs::metadata(segment_path(tmp.path(), seq))
                .unwrap()
                .len();
            assert_eq!(len, TEST_SEGMENT_BYTES, "segment {seq} is pre-sized");
        }
        let (mut wal, rec) = Wal::open(config(tmp.path())).await.unwrap();
        assert_eq!(rec.records, model);
        assert_eq!(wal.segment_count() as u64, segments);
        // One big batch that spans several segments in a single sync.
        let more: Vec<Record> = (0..400).map(|_| rng.record(1000)).collect();
        for r in &more {
            wal.append(r.kind, &r.payload).unwrap();
        }
        assert_eq!(wal.sync().await.unwrap().records, 400);
        assert!(wal.segment_count() as u64 > segments + 2);
        drop(wal);
        let (_, rec) = Wal::open(config(tmp.path())).await.unwrap();
        let mut all = model.clone();
        all.extend(more);
        assert_eq!(rec.records, all);
    });
}

#[test]
fn oversized_record_and_exact_fit() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(config(tmp.path())).await.unwrap();
        let max = wal.payload_bytes_max();
        assert!(max < TEST_SEGMENT_BYTES as usize);
        match wal.append(5, &vec![1u8; max + 1]) {
            Err(WalError::RecordTooLarge { bytes, limit_bytes }) => {
                assert_eq!(bytes, max + 1);
                assert_eq!(limit_bytes, max);
            }
            other => panic!("expected RecordTooLarge, got {other:?}"),
        }
        // The WAL is not failed by a rejected append.
        wal.append(1, b"small").unwrap();
        // A record that fills a whole segment exactly.
        wal.append(2, &vec![7u8; max]).unwrap();
        wal.append(3, b"after").unwrap();
        wal.sync().await.unwrap();
        assert_eq!(wal.segment_count(), 3);
        drop(wal);
        let (_, rec) = Wal::open(config(tmp.path())).await.unwrap();
        let kinds: Vec<u8> = rec.records.iter().map(|r| r.kind).collect();
        assert_eq!(kinds, vec![1, 2, 3]);
        assert_eq!(rec.records[1].payload.len(), max);
    });
}

#[test]
fn reserved_kinds_rejected() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(config(tmp.path())).await.unwrap();
        for kind in [0u8, 0xF0, 0xFF] {
            assert!(matches!(
                wal.append(kind, b"x"),
                Err(WalError::ReservedKind { kind: k }) if k == kind
            ));
        }
        wal.append(0xEF, b"ok").unwrap();
        wal.append(1, b"").unwrap();
        wal.sync().await.unwrap();
        drop(wal);
        let (_, rec) = Wal::open(config(tmp.path())).await.unwrap();
        assert_eq!(rec.records.len(), 2);
        assert_eq!(rec.records[1].payload, b"");
    });
}

#[test]
fn invalid_config_rejected() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        for segment_bytes in [0, 1000, 4096, 64 * 1024 + 512, 2 << 30] {
            let c = WalConfig {
                dir: tmp.path().to_path_buf(),
                segment_bytes,
            };
            assert!(matches!(
                Wal::open(c).await,
                Err(WalError::InvalidConfig { .. })
            ));
        }
    });
}

#[test]
fn leftover_tmp_removed_and_other_files_ignored() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        {
            let (mut wal, _) = Wal::open(config(tmp.path())).await.unwrap();
            wal.append(1, b"a").unwrap();
            wal.sync().await.unwrap();
        }
        let leftover = tmp.path().join("0000000000000002.wal.tmp");
        std::fs::write(&leftover, b"partial").unwrap();
        std::fs::write(tmp.path().join("README"), b"hi").unwrap();
        let (wal, rec) = Wal::open(config(tmp.path())).await.unwrap();
        assert_eq!(rec.records.len(), 1);
        assert!(!leftover.exists());
        assert_eq!(wal.segment_count(), 1);
    });
}

#[test]
fn released_segments_are_gone_and_the_rest_reopens() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let mut rng = Lcg::new(7);
        let model: Vec<Record> = (0..400).map(|_| rng.record(2_000)).collect();
        let kept_from_seq;
        {
            let (mut wal, _) = Wal::open(config(tmp.path())).await.unwrap();
            append_in_batches(&mut wal, &model, &mut rng, 20).await;
            assert!(wal.segment_count() >= 4, "the model spans several segments");
            assert_eq!(wal.first_seq(), 1);
            kept_from_seq = wal.append_seq() - 1;
            let before_bytes = wal.total_bytes();
            let released = wal.release_before(kept_from_seq).await.unwrap();
            assert_eq!(released as u64, kept_from_seq - 1);
            assert_eq!(wal.first_seq(), kept_from_seq);
            assert!(wal.total_bytes() < before_bytes);
            assert!(!segment_path(tmp.path(), 1).exists());
            // Never the active segment, whatever is asked.
            wal.release_before(u64::MAX).await.unwrap();
            assert_eq!(wal.segment_count(), 1);
            let extra = rng.record(100);
            wal.append(extra.kind, &extra.payload).unwrap();
            wal.sync().await.unwrap();
            wal.close().await.unwrap();
        }
        let (wal, rec) = Wal::open(config(tmp.path())).await.unwrap();
        assert_eq!(wal.segment_count(), 1);
        assert_eq!(rec.segments.len(), 1);
        assert_eq!(rec.segments[0].seq, wal.first_seq());
        assert_eq!(rec.segments[0].records, rec.records.len());
        assert!(!rec.records.is_empty());
        // The kept records are a suffix of the model plus the extra one.
        let kept = &rec.records[..rec.records.len() - 1];
        assert_eq!(kept, &model[model.len() - kept.len()..]);
    });
}

#[test]
fn recovered_records_name_their_segments() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let mut rng = Lcg::new(9);
        let model: Vec<Record> = (0..300).map(|_| rng.record(2_000)).collect();
        {
            let (mut wal, _) = Wal::open(config(tmp.path())).await.unwrap();
            append_in_batches(&mut wal, &model, &mut rng, 20).await;
            wal.close().await.unwrap();
        }
        let (wal, rec) = Wal::open(config(tmp.path())).await.unwrap();
        let seqs: Vec<u64> = rec.segments.iter().map(|s| s.seq).collect();
        let expected: Vec<u64> = (1..=wal.segment_count() as u64).collect();
        assert_eq!(seqs, expected);
        let total: usize = rec.segments.iter().map(|s| s.records).sum();
        assert_eq!(total, model.len());
        let placements = layout(&model, TEST_SEGMENT_BYTES);
        for segment in &rec.segments {
            let planned = placements.iter().filter(|p| p.seq == segment.seq).count();
            assert_eq!(planned, segment.records, "segment {}", segment.seq);
        }
    });
}
