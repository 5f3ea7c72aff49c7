// SPDX-License-Identifier: GPL-2.0

use super::mock;
use crate::stream::{
    Header, HeaderError, Summary, CONFIG, END, HEADER_SIZE, PAGE_RECORD_SIZE, REQUIRED, UART,
};

#[test]
fn crc32c_is_the_castagnoli_crc_of_the_format() {
    // migration-stream.md: the CRC of the ASCII bytes 123456789 is 0xe3069283.
    assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
}

#[test]
fn sizes_are_those_of_the_format() {
    assert_eq!(HEADER_SIZE, 32);
    assert_eq!(PAGE_RECORD_SIZE, 4116);
    assert_eq!(mock::page(0, 0).len(), PAGE_RECORD_SIZE);
    // TAIL = 12 + 256 + 12 + 28 + 12.
    assert_eq!(mock::tail().len(), 320);
    // A stream saved by stop-and-copy alone: 32 + pages x 4116 + 320.
    assert_eq!(mock::whole(1).len(), 32 + 256 * 4116 + 320);
}

#[test]
fn parses_the_header() {
    let h = Header::parse(&mock::header(64, 1)).unwrap();
    assert_eq!(
        (h.major, h.minor, h.flags, h.memory_mib, h.ports, h.reserved),
        (1, 0, 0, 64, 1, 0)
    );
    assert!(h.crc_ok);
    assert_eq!(h.pages(), 64 * 256);
}

#[test]
fn the_header_is_little_endian_at_its_offsets() {
    let mut raw = mock::header(4, 1);
    raw[8..10].copy_from_slice(&[2, 0]);
    raw[10..12].copy_from_slice(&[0x34, 0x12]);
    raw[12..16].copy_from_slice(&[1, 0, 0, 0]);
    raw[16..20].copy_from_slice(&[0, 1, 0, 0]);
    raw[20..24].copy_from_slice(&[2, 0, 0, 0]);
    raw[28..32].copy_from_slice(&[0, 0, 0, 0x80]);
    let crc = crc32c::crc32c(&raw[..24]);
    raw[24..28].copy_from_slice(&crc.to_le_bytes());
    let h = Header::parse(&raw).unwrap();
    assert_eq!(
        (h.major, h.minor, h.flags, h.memory_mib, h.ports, h.reserved),
        (2, 0x1234, 1, 256, 2, 0x8000_0000)
    );
    assert!(h.crc_ok);
}

#[test]
fn a_flipped_header_bit_breaks_its_crc() {
    let mut raw = mock::header(4, 1);
    raw[16] ^= 0x10;
    let h = Header::parse(&raw).unwrap();
    assert!(!h.crc_ok);
    assert_eq!(h.memory_mib, 20);
    let mut stream = raw;
    stream.extend(mock::tail());
    let s = Summary::of(&stream).unwrap();
    assert!(!s.complete());
    assert!(s.to_string().contains("header CRC BAD"), "{s}");
}

#[test]
fn refuses_to_describe_what_is_no_stream() {
    assert_eq!(Header::parse(&[0; 31]), Err(HeaderError::Short(31)));
    let e = Header::parse(&[b'x'; 32]).unwrap_err();
    assert_eq!(e, HeaderError::Magic(*b"xxxxxxxx"));
    assert!(e.to_string().contains("RMTTYMIG"));
    assert!(Summary::of(b"").is_err());
}

#[test]
fn describes_a_whole_stream() {
    let s = Summary::of(&mock::whole(2)).unwrap();
    assert_eq!((s.page_records, s.pages), (512, 512));
    assert_eq!((s.config, s.uart, s.end), (1, 1, true));
    assert!(s.complete());
    assert_eq!(
        s.to_string(),
        "rmtty 1.0, memory_mib=2 ports=1, header CRC ok; 512 page records (512 of 512 pages), \
         1 config, 1 UART, end"
    );
}

#[test]
fn counts_pages_sent_again_once() {
    let mut stream = mock::first_pass(1);
    stream.extend(mock::page(3, 1));
    stream.extend(mock::page(3, 2));
    stream.extend(mock::tail());
    let s = Summary::of(&stream).unwrap();
    assert_eq!((s.page_records, s.pages), (258, 256));
    assert!(s.complete());
}

#[test]
fn a_stream_missing_a_page_is_not_complete() {
    let mut stream = mock::header(1, 1);
    for i in 1..256 {
        stream.extend(mock::page(i, 0));
    }
    stream.extend(mock::tail());
    let s = Summary::of(&stream).unwrap();
    assert_eq!(s.pages, 255);
    assert!(!s.complete());
}

#[test]
fn a_pre_copy_pass_alone_has_no_end() {
    let s = Summary::of(&mock::first_pass(1)).unwrap();
    assert!(!s.end);
    assert!(!s.complete());
    assert!(s.to_string().ends_with("no end record"), "{s}");
}

#[test]
fn counts_records_with_a_bad_crc() {
    let mut stream = mock::whole(1);
    // A byte of page 5's data.
    stream[HEADER_SIZE + 5 * PAGE_RECORD_SIZE + 100] ^= 1;
    let s = Summary::of(&stream).unwrap();
    assert_eq!(s.bad_crc, 1);
    assert_eq!(s.pages, 255);
    assert!(!s.complete());
    assert_eq!(s.json()["bad_crc_records"], 1);
}

#[test]
fn unknown_records_are_told_apart_by_required() {
    let mut stream = mock::first_pass(1);
    stream.extend(mock::record(0x100, 0, &[1, 2, 3]));
    stream.extend(mock::tail());
    let s = Summary::of(&stream).unwrap();
    assert_eq!((s.unknown_optional, s.unknown_required), (1, 0));
    assert!(s.complete());

    let mut stream = mock::first_pass(1);
    stream.extend(mock::record(0x100, REQUIRED, &[]));
    stream.extend(mock::tail());
    let s = Summary::of(&stream).unwrap();
    assert_eq!(s.unknown_required, 1);
    assert!(!s.complete());
}

#[test]
fn known_records_of_the_wrong_length_or_index_are_malformed() {
    let mut stream = mock::first_pass(1);
    stream.extend(mock::record(CONFIG, REQUIRED, &[0; 255]));
    stream.extend(mock::record(UART, REQUIRED, &[0; 29]));
    stream.extend(mock::page(256, 0));
    stream.extend(mock::tail());
    let s = Summary::of(&stream).unwrap();
    assert_eq!(s.malformed, 3);
    assert_eq!((s.config, s.uart), (1, 1));
    assert!(!s.complete());
}

#[test]
fn notes_bytes_after_the_end_and_a_cut_record() {
    let mut stream = mock::whole(1);
    stream.extend_from_slice(&[0; 5]);
    let s = Summary::of(&stream).unwrap();
    assert_eq!(s.trailing, 5);
    assert!(!s.complete());

    let mut stream = mock::first_pass(1);
    stream.extend_from_slice(&mock::record(END, REQUIRED, &[])[..7]);
    let s = Summary::of(&stream).unwrap();
    assert_eq!(s.truncated, 7);

    let mut stream = mock::header(1, 1);
    stream.extend_from_slice(&mock::page(0, 0)[..100]);
    let s = Summary::of(&stream).unwrap();
    assert_eq!((s.truncated, s.page_records), (100, 0));
    assert!(s.to_string().contains("100 bytes of a cut record"), "{s}");
}

#[test]
fn a_huge_length_is_a_cut_record() {
    let mut stream = mock::header(1, 1);
    let mut head = mock::record(0x200, 0, &[]);
    head[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    stream.extend(head);
    let s = Summary::of(&stream).unwrap();
    assert_eq!(s.truncated, 12);
}

#[test]
fn the_summary_as_json() {
    let v = Summary::of(&mock::whole(1)).unwrap().json();
    assert_eq!(v["header"]["major"], 1);
    assert_eq!(v["header"]["minor"], 0);
    assert_eq!(v["header"]["memory_mib"], 1);
    assert_eq!(v["header"]["ports"], 1);
    assert_eq!(v["header"]["crc_ok"], true);
    assert_eq!(v["pages"], 256);
    assert_eq!(v["complete"], true);
}

#[test]
fn describes_a_1_1_stream_and_its_summary() {
    let stream = mock::whole_1_1(1);
    // TAIL in 1.1 = 12 + 256 + 12 + 28 + 12 + 16 + 12.
    assert_eq!(stream.len(), 32 + 256 * 4116 + 348);
    let s = Summary::of(&stream).unwrap();
    assert_eq!((s.summary, s.unknown_optional, s.malformed), (1, 0, 0));
    assert!(s.complete());
    assert_eq!(
        s.to_string(),
        "rmtty 1.1, memory_mib=1 ports=1, header CRC ok; 256 page records (256 of 256 pages), \
         1 config, 1 UART, 1 summary, end"
    );
    assert_eq!(s.json()["summary_records"], 1);

    // A summary whose page count is wrong (its CRC right) is malformed.
    let at = stream.len() - 12 - 28;
    let mut bad = stream[..at].to_vec();
    bad.extend(mock::summary(at as u64, 255));
    bad.extend(mock::record(END, REQUIRED, &[]));
    let s = Summary::of(&bad).unwrap();
    assert_eq!((s.summary, s.malformed), (0, 1));
    assert!(!s.complete());

    // A 1.1 stream without a summary is not complete; a 1.0 stream needs none.
    let mut none = stream[..at].to_vec();
    none.extend(mock::record(END, REQUIRED, &[]));
    assert!(!Summary::of(&none).unwrap().complete());
    none[10] = 0;
    let crc = crc32c::crc32c(&none[..24]);
    none[24..28].copy_from_slice(&crc.to_le_bytes());
    assert!(Summary::of(&none).unwrap().complete());
}
