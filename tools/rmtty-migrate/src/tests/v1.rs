// SPDX-License-Identifier: GPL-2.0

//! The v1 transport: its pure parts (the header's fields, the state bits), and the sessions
//! over it against a simulated region ([`Sim`]).

use super::mock;
use super::v1sim::{Lying, Sim, DATA_OFFSET};
use crate::report::{Operation, PassEnd, PassKind, Report};
use crate::session::{self, SaveOptions};
use crate::transport::{Chunk, MigState, Pending, Result, Transport};
use crate::v1::{state_bits, state_of, with_state_bits, Field, V1};
use std::mem::{offset_of, size_of};
use vfio_bindings::bindings::vfio::*;

const MIB: usize = 1 << 20;

#[test]
fn fields_have_the_7_2_uapi_offsets_and_widths() {
    assert_eq!(size_of::<vfio_device_migration_info>(), 32);
    let fields = [
        (Field::DeviceState, 0, 4, "device_state"),
        (Field::PendingBytes, 8, 8, "pending_bytes"),
        (Field::DataOffset, 16, 8, "data_offset"),
        (Field::DataSize, 24, 8, "data_size"),
    ];
    for (field, offset, width, name) in fields {
        assert_eq!(
            (field.offset(), field.width(), field.name()),
            (offset, width, name)
        );
    }
    assert_eq!(offset_of!(vfio_device_migration_info, reserved), 4);
}

#[test]
fn fields_encode_at_their_width() {
    assert_eq!(
        Field::DeviceState.encode(3),
        Some(3u32.to_ne_bytes().to_vec())
    );
    assert_eq!(Field::DeviceState.encode(1 << 32), None);
    let size = Field::DataSize.encode(0x0102_0304_0506_0708).unwrap();
    assert_eq!(size, 0x0102_0304_0506_0708u64.to_ne_bytes());
    assert_eq!(Field::DataSize.decode(&size), Some(0x0102_0304_0506_0708));
    assert_eq!(
        Field::DeviceState.decode(&[4, 0, 0, 0][..]),
        Some(u32::from_ne_bytes([4, 0, 0, 0]).into())
    );
    // Only whole fields decode.
    assert_eq!(Field::DeviceState.decode(&size), None);
    assert_eq!(Field::PendingBytes.decode(&[0; 4]), None);
}

#[test]
fn states_have_their_v1_bits() {
    assert_eq!(VFIO_DEVICE_STATE_V1_RUNNING, 1);
    assert_eq!(VFIO_DEVICE_STATE_V1_SAVING, 2);
    assert_eq!(VFIO_DEVICE_STATE_V1_RESUMING, 4);
    assert_eq!(VFIO_DEVICE_STATE_MASK, 7);
    assert_eq!(VFIO_REGION_TYPE_MIGRATION_DEPRECATED, 3);
    assert_eq!(VFIO_REGION_SUBTYPE_MIGRATION_DEPRECATED, 1);
    let bits = [
        (MigState::Stop, 0b000),
        (MigState::Running, 0b001),
        (MigState::StopCopy, 0b010),
        (MigState::PreCopy, 0b011),
        (MigState::Resuming, 0b100),
    ];
    for (state, b) in bits {
        assert_eq!(state_bits(state), Some(b), "{state}");
        assert_eq!(state_of(b), Some(state));
        // The bits above are not the state's.
        assert_eq!(state_of(b | 0x80), Some(state));
    }
    for state in [MigState::Error, MigState::RunningP2p, MigState::PreCopyP2p] {
        assert_eq!(state_bits(state), None, "{state}");
    }
    assert_eq!(state_of(0b110), Some(MigState::Error));
    assert_eq!(state_of(0b101), None);
    assert_eq!(state_of(0b111), None);
}

#[test]
fn a_state_write_keeps_the_bits_above() {
    assert_eq!(with_state_bits(0xf0 | 0b001, 0b011), 0xf3);
    assert_eq!(with_state_bits(0x8000_0003, 0), 0x8000_0000);
    assert_eq!(with_state_bits(0b111, 0b100), 0b100);
    // Only state bits are taken from the new ones.
    assert_eq!(with_state_bits(0, 0xff), 0b111);
}

fn report(operation: Operation) -> Report {
    let mut r = Report::new(operation, "/sys/bus/mdev/devices/x".into(), "group", "v1");
    r.v1 = Some(Sim::new(MIB).layout());
    r
}

fn save(sim: &mut Sim, passes: u32, workload: Option<session::Workload<'_>>) -> (Report, Vec<u8>) {
    let mut r = report(Operation::Save);
    let mut out = Vec::new();
    let layout = sim.layout();
    let mut t = V1::new(sim, layout);
    let opts = SaveOptions {
        precopy_passes: passes,
    };
    let done = session::save(&mut t, &opts, workload, &mut r, &mut out);
    assert_eq!(done.as_ref().err(), r.error.as_ref());
    (r, out)
}

fn load(sim: &mut Sim, stream: &[u8]) -> Report {
    let mut r = report(Operation::Load);
    let layout = sim.layout();
    let mut t = V1::new(sim, layout);
    let done = session::load(&mut t, stream, &mut r);
    assert_eq!(done.as_ref().err(), r.error.as_ref());
    r
}

#[test]
fn stop_copy_alone_reads_buffers_until_pending_bytes_is_0() {
    let mut sim = Sim::new(MIB);
    sim.stop_copy = mock::whole(2);
    let (r, out) = save(&mut sim, 0, None);
    assert_eq!(r.error, None);
    assert_eq!(out, sim.stop_copy);
    // 001 -> 010 straight, then 000.
    let states: Vec<&String> = sim.log.iter().filter(|l| l.starts_with("w ")).collect();
    assert_eq!(states, ["w device_state 2", "w device_state 0"]);
    // Each buffer: pending_bytes, data_offset, data_size, one read of the data.
    let buffers = out.len().div_ceil(MIB);
    assert_eq!(buffers, 3);
    assert_eq!(sim.data_reads.len(), buffers);
    assert!(sim.data_reads.iter().all(|&(at, _)| at == DATA_OFFSET));
    let trace = sim.trace();
    assert!(
        trace.contains("r pending_bytes, r data_offset, r data_size, r pending_bytes"),
        "{trace}"
    );
    let pass = &r.passes[0];
    assert_eq!(
        (pass.kind, pass.end),
        (PassKind::StopCopy, Some(PassEnd::Eof))
    );
    assert_eq!(pass.calls, buffers as u64 + 1);
    assert_eq!(r.data_size, None);
    assert_eq!(r.final_state, Some(MigState::Stop));
    assert!(r.stream_complete());
    assert!(r.human().contains("stop-copy: "), "{}", r.human());
    assert!(r.human().contains("; pending_bytes 0\n"), "{}", r.human());
    assert_eq!(r.json()["passes"][0]["end"], "pending_bytes 0");
}

#[test]
fn precopy_passes_read_until_pending_bytes_is_0() {
    let mut sim = Sim::new(MIB);
    let first = mock::first_pass(1);
    let dirty = mock::page(3, 0x55);
    sim.precopy = [first.clone(), dirty.clone()].into();
    sim.stop_copy = mock::tail();
    let mut runs = Vec::new();
    let mut workload = |pass: u32| -> Result<()> {
        runs.push(pass);
        Ok(())
    };
    let (r, out) = save(&mut sim, 2, Some(&mut workload));
    assert_eq!(r.error, None);
    assert_eq!(runs, [1, 2]);
    assert_eq!(out, [first.clone(), dirty.clone(), mock::tail()].concat());
    let states: Vec<&String> = sim.log.iter().filter(|l| l.starts_with("w ")).collect();
    assert_eq!(
        states,
        ["w device_state 3", "w device_state 2", "w device_state 0"]
    );
    assert_eq!(
        r.passes[0].pending,
        Some(Pending::Total(first.len() as u64))
    );
    assert_eq!(
        r.passes[1].pending,
        Some(Pending::Total(dirty.len() as u64))
    );
    assert_eq!(r.passes[0].end, Some(PassEnd::NotReady));
    assert_eq!(r.passes[2].bytes, mock::tail().len() as u64);
    assert_eq!(r.json()["passes"][0]["pending_bytes"], first.len() as u64);
    assert!(
        r.human().contains("pending at start: pending_bytes "),
        "{}",
        r.human()
    );
    assert_eq!(r.final_state, Some(MigState::Stop));
}

#[test]
fn a_buffer_larger_than_a_read_is_read_in_parts() {
    let mut sim = Sim::new(MIB);
    sim.stop_copy = (0..MIB + 10).map(|i| i as u8).collect();
    let layout = sim.layout();
    let expected = sim.stop_copy.clone();
    let mut t = V1::new(&mut sim, layout);
    t.set_state(MigState::StopCopy).unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0; 300_000];
    loop {
        match t.read(&mut buf).unwrap() {
            Chunk::Data(n) => got.extend_from_slice(&buf[..n]),
            Chunk::End => break,
            Chunk::NotReady => panic!("not ready in stop-copy"),
        }
    }
    assert_eq!(got, expected);
    drop(t);
    // 4 reads of the first buffer, 1 of the second.
    assert_eq!(sim.data_reads.len(), 4 + 1);
}

#[test]
fn pending_is_refused_in_the_middle_of_a_buffer() {
    let mut sim = Sim::new(MIB);
    sim.precopy = [vec![7; 100]].into();
    let layout = sim.layout();
    let mut t = V1::new(&mut sim, layout);
    t.set_state(MigState::PreCopy).unwrap();
    assert_eq!(t.read(&mut [0; 10]).unwrap(), Chunk::Data(10));
    let e = t.pending().unwrap_err();
    assert!(
        e.to_string().contains("90 bytes of the current buffer"),
        "{e}"
    );
}

#[test]
fn state_writes_keep_the_bits_above_the_state() {
    let mut sim = Sim::new(MIB);
    sim.upper = 0x100;
    sim.state = 0x101;
    sim.stop_copy = mock::whole(1);
    let (r, out) = save(&mut sim, 0, None);
    assert_eq!(r.error, None);
    assert_eq!(out, sim.stop_copy);
    assert!(
        sim.trace().contains("w device_state 258"),
        "{}",
        sim.trace()
    );
    assert_eq!(sim.state, 0x100);
}

#[test]
fn a_load_is_cut_into_pieces_of_the_data_section() {
    // A 64 KiB data section: a stream saved in MiB buffers goes in 64 KiB pieces.
    let section = 64 << 10;
    let mut sim = Sim::new(section);
    let stream = mock::whole(1);
    let r = load(&mut sim, &stream);
    assert_eq!(r.error, None);
    assert_eq!(sim.loaded.concat(), stream);
    let pieces = stream.len().div_ceil(section);
    assert_eq!(sim.loaded.len(), pieces);
    assert!(sim.loaded[..pieces - 1].iter().all(|p| p.len() == section));
    assert_eq!(sim.data_writes.len(), pieces);
    assert_eq!(r.passes[0].calls, pieces as u64);
    // Each piece: data_offset read, the bytes, data_size written; then the commit.
    let trace = sim.trace();
    assert!(
        trace.starts_with(
            "r device_state, r device_state, w device_state 4, r data_offset, w data_size 65536"
        ),
        "{trace}"
    );
    assert!(
        trace.ends_with("r device_state, w device_state 1, r device_state"),
        "{trace}"
    );
    assert_eq!(r.final_state, Some(MigState::Running));
    assert_eq!(r.cancel, None);
}

#[test]
fn a_refused_piece_names_data_size_and_the_device_is_put_back_to_running() {
    let mut sim = Sim::new(MIB);
    sim.refuse_piece = Some(1);
    let r = load(&mut sim, &vec![1; 3 * MIB]);
    let e = r.error.clone().unwrap();
    assert_eq!(e.errno, Some(libc::EINVAL));
    assert_eq!(
        e.to_string(),
        "write of stream bytes 1048576..2097152: write data_size: EINVAL (Invalid argument)"
    );
    assert_eq!(r.final_state, Some(MigState::Resuming));
    assert_eq!(r.cancel, Some(Ok(MigState::Running)));
    assert_eq!(sim.state, 1);
    assert!(r
        .human()
        .contains("cancelled: the device was put back to RUNNING"));
    assert_eq!(r.json()["cancelled_to"], "RUNNING");
}

#[test]
fn a_refused_commit_is_reported_and_the_cancel_fails_too() {
    let mut sim = Sim::new(MIB);
    sim.refuse_commit = true;
    let r = load(&mut sim, &mock::whole(1));
    let e = r.error.clone().unwrap();
    assert_eq!(
        e.to_string(),
        "RESUMING -> RUNNING: write device_state: EINVAL: the device refused the stream \
         (incomplete or bad)"
    );
    assert_eq!(r.final_state, Some(MigState::Resuming));
    let cancel = r.cancel.clone().unwrap().unwrap_err();
    assert_eq!(
        cancel.to_string(),
        "write device_state: EINVAL (Invalid argument)"
    );
    assert!(
        r.human().contains(
            "  cancel (back to RUNNING) failed: write device_state: EINVAL (Invalid argument)\n"
        ),
        "{}",
        r.human()
    );
    assert_eq!(r.json()["cancel_error"]["errno_name"], "EINVAL");
}

#[test]
fn a_failed_save_puts_the_device_back_to_running() {
    let mut sim = Sim::new(MIB);
    sim.precopy = [mock::first_pass(1)].into();
    let mut workload = |_: u32| -> Result<()> {
        Err(crate::transport::Error::other(
            "workload after pre-copy pass 1",
            "exit status: 1",
        ))
    };
    let (r, _) = save(&mut sim, 2, Some(&mut workload));
    assert!(r.error.is_some());
    assert_eq!(r.final_state, Some(MigState::PreCopy));
    assert_eq!(r.cancel, Some(Ok(MigState::Running)));
    assert_eq!(sim.state, 1);
    assert!(r.phases.iter().any(|p| p.name == "cancel -> RUNNING"));
}

/// The error of a save from `sim`, whose header reads `lie` passes through.
fn failed_save(sim: Sim, lie: impl FnMut(u32, Field, u64) -> u64) -> crate::transport::Error {
    let layout = sim.layout();
    let mut t = V1::new(Lying(sim, lie), layout);
    let mut r = report(Operation::Save);
    session::save(
        &mut t,
        &SaveOptions::default(),
        None,
        &mut r,
        &mut Vec::new(),
    )
    .unwrap_err()
}

#[test]
fn a_stuck_device_fails_the_save_instead_of_looping() {
    // pending_bytes says there is more, but no buffer comes.
    let stuck = |state: u32, field, value| match field {
        Field::PendingBytes if state & 2 != 0 => 4096,
        Field::DataSize => 0,
        _ => value,
    };
    let e = failed_save(Sim::new(MIB), stuck);
    assert_eq!(
        e.to_string(),
        "stop-copy: read data_size: 0 while pending_bytes is 4096"
    );
}

#[test]
fn a_buffer_outside_the_region_is_refused() {
    // data_offset puts the buffer a page further on, past the region's end.
    let far = |_, field, value| match field {
        Field::DataOffset => value + 4096,
        _ => value,
    };
    let mut sim = Sim::new(MIB);
    sim.stop_copy = vec![0; MIB];
    let e = failed_save(sim, far);
    assert!(
        e.to_string()
            .contains("1048576 bytes at data_offset 8192 are not inside"),
        "{e}"
    );
    let e = load(&mut Sim::new(MIB), &[]).error;
    assert_eq!(
        e, None,
        "an empty stream is written as nothing, then committed"
    );
}

#[test]
fn the_report_says_how_the_data_moved() {
    let mut r = report(Operation::Save);
    let human = r.human();
    assert!(
        human.contains("v1 region 9: 1052672 bytes, data section of 1048576 bytes at 4096, through pread/pwrite (simulated)"),
        "{human}"
    );
    let layout = r.v1.as_mut().unwrap();
    layout.access = crate::v1::DataAccess::Mmap;
    layout.no_mmap_reason = None;
    let json = r.json();
    assert_eq!(json["v1_region"]["data_access"], "mmap");
    assert_eq!(json["v1_region"]["region_index"], 9);
    assert_eq!(json["v1_region"]["data_section_size"], 1 << 20);
    assert_eq!(json["v1_region"]["no_mmap_reason"], serde_json::Value::Null);
    assert_eq!(json["transport"], "v1");
}
