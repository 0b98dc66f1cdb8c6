//! Crash and corruption recovery against a model.

mod common;

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use capstan_wal::{Record, Wal, WalError};
use common::*;

/// Writes `count` random records in random batches; returns the model.
async fn write_model(dir: &Path, seed: u64, count: usize, max_len: usize) -> Vec<Record> {
    let mut rng = Lcg::new(seed);
    let model: Vec<Record> = (0..count).map(|_| rng.record(max_len)).collect();
    let (mut wal, rec) = Wal::open(config(dir)).await.unwrap();
    assert!(rec.records.is_empty());
    append_in_batches(&mut wal, &model, &mut rng, 12).await;
    wal.close().await.unwrap();
    model
}

fn flip_byte(path: &Path, offset: u64) {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.read_exact(&mut b).unwrap();
    b[0] ^= 0x20;
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(&b).unwrap();
    f.sync_all().unwrap();
}

fn write_bytes(path: &Path, offset: u64, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(bytes).unwrap();
    f.sync_all().unwrap();
}

fn expect_corrupt(
    result: Result<(Wal, capstan_wal::Recovered), WalError>,
    path: &Path,
    offset: u64,
) {
    match result {
        Err(e @ WalError::Corrupt { .. }) => {
            let WalError::Corrupt {
                path: p, offset: o, ..
            } = &e
            else {
                unreachable!()
            };
            assert_eq!(p, path, "{e}");
            assert_eq!(*o, offset, "{e}");
            let shown = e.to_string();
            assert!(shown.contains(&path.display().to_string()), "{shown}");
            assert!(shown.contains(&format!("at offset {offset}")), "{shown}");
        }
        Err(e) => panic!("expected Corrupt, got {e}"),
        Ok((_, rec)) => panic!(
            "expected Corrupt, opened with {} records",
            rec.records.len()
        ),
    }
}

/// Cut the last segment at an offset chosen by `choose(rng, last_data_end)`
/// and check recovery keeps exactly the records before the cut.
fn torn_trial(trial: u64, count: usize, fixed_cut: Option<u64>) {
    run(move || async move {
        let tmp = tempfile::tempdir().unwrap();
        let mut rng = Lcg::new(100 + trial);
        let model = write_model(tmp.path(), 100 + trial, count, 700).await;
        let layout = layout(&model, TEST_SEGMENT_BYTES);
        let last_seq = layout.last().unwrap().seq;
        let last = segment_path(tmp.path(), last_seq);
        let last_data_end = layout.last().unwrap().padded_end;
        // Mostly cut inside the data; sometimes anywhere in the file.
        let cut = match fixed_cut {
            Some(c) => c,
            None if trial % 3 == 2 => rng.below(TEST_SEGMENT_BYTES),
            None => rng.below(last_data_end + 1),
        };
        std::fs::OpenOptions::new()
            .write(true)
            .open(&last)
            .unwrap()
            .set_len(cut)
            .unwrap();
        let kept = layout
            .iter()
            .filter(|p| {
                p.seq < last_seq || (cut >= capstan_wal::SEGMENT_HEADER_BYTES && p.end <= cut)
            })
            .count();

        let (mut wal, rec) = Wal::open(config(tmp.path())).await.unwrap();
        assert_eq!(rec.records, model[..kept], "trial {trial} cut {cut}");
        let torn = rec.torn_tail.expect("torn tail reported");
        assert_eq!(torn.path, last);
        if cut >= capstan_wal::SEGMENT_HEADER_BYTES {
            let expected_end = if kept == 0 || layout[kept - 1].seq < last_seq {
                capstan_wal::SEGMENT_HEADER_BYTES
            } else {
                layout[kept - 1].padded_end
            };
            assert_eq!(torn.offset, expected_end, "trial {trial} cut {cut}");
        } else {
            assert_eq!(torn.offset, 0);
        }
        assert_eq!(std::fs::metadata(&last).unwrap().len(), TEST_SEGMENT_BYTES);

        // Appending after the repair works and survives a reopen.
        let more: Vec<Record> = (0..150).map(|_| rng.record(700)).collect();
        append_in_batches(&mut wal, &more, &mut rng, 9).await;
        drop(wal);
        let (_, rec) = Wal::open(config(tmp.path())).await.unwrap();
        let mut expected = model[..kept].to_vec();
        expected.extend(more);
        assert_eq!(rec.records, expected, "trial {trial} cut {cut}");
        assert!(rec.torn_tail.is_none());
    });
}

#[test]
fn torn_tail_truncated_at_random_offsets() {
    for trial in 0..12u64 {
        torn_trial(trial, 300, None);
    }
}

#[test]
fn torn_tail_truncated_at_edge_offsets() {
    for (i, cut) in [0u64, 1, 63, 64, 65, 75, 76, 4095, 4096, 4097]
        .into_iter()
        .enumerate()
    {
        // One segment only, and several segments.
        torn_trial(50 + i as u64, 20, Some(cut));
        torn_trial(70 + i as u64, 300, Some(cut));
    }
}

#[test]
fn garbage_after_the_tail_is_a_torn_tail() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let model = write_model(tmp.path(), 7, 40, 200).await;
        let layout = layout(&model, TEST_SEGMENT_BYTES);
        assert_eq!(layout.last().unwrap().seq, 1);
        let seg = segment_path(tmp.path(), 1);
        let end = layout.last().unwrap().padded_end;
        // A half-written record header and payload garbage after the end.
        let mut rng = Lcg::new(8);
        write_bytes(&seg, end, &rng.bytes(5000));
        let (mut wal, rec) = Wal::open(config(tmp.path())).await.unwrap();
        assert_eq!(rec.records, model);
        let torn = rec.torn_tail.expect("torn tail");
        assert_eq!(torn.offset, end);
        wal.append(9, b"after repair").unwrap();
        wal.sync().await.unwrap();
        drop(wal);
        let (_, rec) = Wal::open(config(tmp.path())).await.unwrap();
        assert_eq!(rec.records.len(), model.len() + 1);
        assert!(rec.torn_tail.is_none());
    });
}

#[test]
fn damaged_last_record_is_a_torn_tail() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let model = write_model(tmp.path(), 9, 30, 200).await;
        let layout = layout(&model, TEST_SEGMENT_BYTES);
        let last = *layout.last().unwrap();
        let seg = segment_path(tmp.path(), last.seq);
        flip_byte(&seg, last.start + 12);
        let (_, rec) = Wal::open(config(tmp.path())).await.unwrap();
        assert_eq!(rec.records, model[..model.len() - 1]);
        assert_eq!(rec.torn_tail.unwrap().offset, last.start);
    });
}

#[test]
fn flipped_byte_mid_segment_is_corruption() {
    let mut rng = Lcg::new(11);
    for trial in 0..6u64 {
        let pick = rng.next_u64();
        run(move || async move {
            let tmp = tempfile::tempdir().unwrap();
            let model = write_model(tmp.path(), 200 + trial, 60, 400).await;
            let layout = layout(&model, TEST_SEGMENT_BYTES);
            assert_eq!(layout.last().unwrap().seq, 1);
            // A record with valid records after it.
            let victim = layout[(pick % (layout.len() as u64 - 5)) as usize];
            let within = (pick >> 32) % (victim.end - victim.start);
            let seg = segment_path(tmp.path(), 1);
            flip_byte(&seg, victim.start + within);
            expect_corrupt(Wal::open(config(tmp.path())).await, &seg, victim.start);
            // Still refuses on a second attempt (nothing was "repaired").
            expect_corrupt(Wal::open(config(tmp.path())).await, &seg, victim.start);
        });
    }
}

#[test]
fn corruption_in_a_sealed_segment_is_an_error() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let model = write_model(tmp.path(), 12, 400, 700).await;
        let layout = layout(&model, TEST_SEGMENT_BYTES);
        assert!(layout.last().unwrap().seq >= 3);
        // The LAST record of segment 1: nothing valid follows it in that
        // segment, yet it is not a torn tail because segment 1 is sealed.
        let victim = *layout.iter().rfind(|p| p.seq == 1).unwrap();
        let seg1 = segment_path(tmp.path(), 1);
        flip_byte(&seg1, victim.start + 4);
        expect_corrupt(Wal::open(config(tmp.path())).await, &seg1, victim.start);
    });
}

#[test]
fn nonzero_bytes_after_end_of_sealed_segment_are_an_error() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let model = write_model(tmp.path(), 13, 400, 700).await;
        let layout = layout(&model, TEST_SEGMENT_BYTES);
        let end = layout.iter().rfind(|p| p.seq == 1).unwrap().padded_end;
        let seg1 = segment_path(tmp.path(), 1);
        write_bytes(&seg1, end + 100, &[1]);
        expect_corrupt(Wal::open(config(tmp.path())).await, &seg1, end + 100);
    });
}

#[test]
fn truncated_sealed_segment_and_bad_header_are_errors() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        write_model(tmp.path(), 14, 400, 700).await;
        let seg2 = segment_path(tmp.path(), 2);
        let full = std::fs::read(&seg2).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&seg2)
            .unwrap()
            .set_len(TEST_SEGMENT_BYTES - 4096)
            .unwrap();
        expect_corrupt(
            Wal::open(config(tmp.path())).await,
            &seg2,
            TEST_SEGMENT_BYTES - 4096,
        );
        std::fs::write(&seg2, &full).unwrap();
        flip_byte(&seg2, 20); // inside the seq field of the header
        expect_corrupt(Wal::open(config(tmp.path())).await, &seg2, 0);
    });
}

#[test]
fn missing_segment_is_an_error() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let model = write_model(tmp.path(), 15, 400, 700).await;
        assert!(layout(&model, TEST_SEGMENT_BYTES).last().unwrap().seq >= 3);
        std::fs::remove_file(segment_path(tmp.path(), 2)).unwrap();
        expect_corrupt(
            Wal::open(config(tmp.path())).await,
            &segment_path(tmp.path(), 3),
            0,
        );
    });
}

#[test]
fn segment_copied_under_another_name_does_not_validate() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        write_model(tmp.path(), 16, 400, 700).await;
        let one = std::fs::read(segment_path(tmp.path(), 1)).unwrap();
        std::fs::write(segment_path(tmp.path(), 2), one).unwrap();
        let err = Wal::open(config(tmp.path())).await.err().expect("error");
        assert!(matches!(err, WalError::Corrupt { offset: 0, .. }), "{err}");
    });
}

/// A default-sized (pre-zeroed 64 MiB) last segment: its start is read in growing prefixes, and
/// only `TAIL_CHECK_BYTES` of zeros after the records are looked at.
mod default_sized_last_segment {
    use super::*;
    use capstan_wal::{WalConfig, SEGMENT_BYTES_DEFAULT, TAIL_CHECK_BYTES};

    fn big_config(dir: &Path) -> WalConfig {
        WalConfig {
            dir: dir.to_path_buf(),
            segment_bytes: SEGMENT_BYTES_DEFAULT,
        }
    }

    /// Writes `count` records of `payload_bytes` each; returns them and the end of data.
    async fn write_big(dir: &Path, count: usize, payload_bytes: usize) -> (Vec<Record>, u64) {
        let mut rng = Lcg::new(count as u64);
        let model: Vec<Record> = (0..count)
            .map(|_| Record {
                kind: 1,
                payload: rng.bytes(payload_bytes),
            })
            .collect();
        let (mut wal, _) = Wal::open(big_config(dir)).await.unwrap();
        for batch in model.chunks(64) {
            for r in batch {
                wal.append(r.kind, &r.payload).unwrap();
            }
            wal.sync().await.unwrap();
        }
        wal.close().await.unwrap();
        let end = layout(&model, SEGMENT_BYTES_DEFAULT)
            .last()
            .unwrap()
            .padded_end;
        (model, end)
    }

    #[test]
    fn records_past_the_first_read_are_all_recovered() {
        run(|| async {
            let tmp = tempfile::tempdir().unwrap();
            // ~20 MiB of records: more than the first prefix read holds.
            let (model, end) = write_big(tmp.path(), 640, 32 * 1024).await;
            assert!(end > 2 * TAIL_CHECK_BYTES, "{end}");
            let (mut wal, rec) = Wal::open(big_config(tmp.path())).await.unwrap();
            assert_eq!(rec.records, model);
            assert!(rec.torn_tail.is_none());
            wal.append(2, b"after").unwrap();
            wal.sync().await.unwrap();
            wal.close().await.unwrap();
            let (_, rec) = Wal::open(big_config(tmp.path())).await.unwrap();
            assert_eq!(rec.records.len(), model.len() + 1);
        });
    }

    #[test]
    fn a_record_behind_zeros_within_the_tail_check_is_corruption() {
        run(|| async {
            let tmp = tempfile::tempdir().unwrap();
            let (model, end) = write_big(tmp.path(), 20, 1000).await;
            let seg = segment_path(tmp.path(), 1);
            // The segment's first record again, as if acknowledged records followed a lost
            // stretch of a few MiB.
            let first = layout(&model, SEGMENT_BYTES_DEFAULT)[0];
            let bytes = std::fs::read(&seg).unwrap();
            let copy = &bytes[first.start as usize..first.padded_end as usize];
            write_bytes(&seg, end + TAIL_CHECK_BYTES - 64 * 1024, copy);
            expect_corrupt(Wal::open(big_config(tmp.path())).await, &seg, end);
        });
    }

    #[test]
    fn garbage_within_the_tail_check_is_a_torn_tail() {
        run(|| async {
            let tmp = tempfile::tempdir().unwrap();
            let (model, end) = write_big(tmp.path(), 20, 1000).await;
            let seg = segment_path(tmp.path(), 1);
            write_bytes(&seg, end + 1024 * 1024, &Lcg::new(5).bytes(3000));
            let (_, rec) = Wal::open(big_config(tmp.path())).await.unwrap();
            assert_eq!(rec.records, model);
            assert_eq!(rec.torn_tail.expect("torn tail").offset, end);
            let (_, rec) = Wal::open(big_config(tmp.path())).await.unwrap();
            assert_eq!(rec.records, model);
            assert!(rec.torn_tail.is_none(), "the repair zeroed the garbage");
        });
    }
}
