//! The WASI preview1 subset proxy-wasm hosts serve (Envoy's capability list): stdout/stderr
//! become info/error log lines, the environment is the VM's configured variables, clocks read the
//! scenario's virtual clock, randomness is seeded per VM so runs repeat, and no files exist.
//! Every function returns a WASI errno.

use wasmtime::Linker;

use super::Ctx;
use super::memory;
use crate::state::VmState;
use crate::types::{LogLevel, MAX_RANDOM};

const SUCCESS: i32 = 0;
const BADF: i32 = 8;
const FAULT: i32 = 21;
const INVAL: i32 = 28;
const NOSYS: i32 = 52;

fn errno(result: Result<(), crate::types::Status>) -> i32 {
    if result.is_ok() { SUCCESS } else { FAULT }
}

/// `fd_write(fd, iovs, iovs_len, nwritten_out)`.
fn fd_write(caller: &mut Ctx<'_>, fd: i32, iovs: i32, iovs_len: i32, nwritten: i32) -> i32 {
    let level = match fd {
        1 => LogLevel::Info,
        2 => LogLevel::Error,
        _ => return BADF,
    };
    let mut text = Vec::new();
    for i in 0..iovs_len.max(0) {
        let Some(at) = i.checked_mul(8).and_then(|o| iovs.checked_add(o)) else {
            return FAULT;
        };
        let Ok(iov) = memory::read(caller, at, 8) else {
            return FAULT;
        };
        let word = |o: usize| {
            iov.get(o..o + 4)
                .and_then(|b| b.try_into().ok())
                .map(i32::from_le_bytes)
        };
        let (Some(ptr), Some(len)) = (word(0), word(4)) else {
            return FAULT;
        };
        match memory::read(caller, ptr, len) {
            Ok(bytes) => text.extend(bytes),
            Err(_) => return FAULT,
        }
    }
    let written = u32::try_from(text.len()).unwrap_or(u32::MAX);
    let message = String::from_utf8_lossy(&text)
        .trim_end_matches('\n')
        .to_owned();
    if !message.is_empty() {
        caller.data().log(level, message);
    }
    errno(memory::write_u32(caller, nwritten, written))
}

/// Serialises `KEY=value\0` entries and writes pointers + bytes (`environ_get`).
fn environ(state: &VmState) -> Vec<Vec<u8>> {
    state
        .plugin
        .environment
        .iter()
        .map(|(k, v)| format!("{k}={v}\0").into_bytes())
        .collect()
}

fn environ_sizes_get(caller: &mut Ctx<'_>, count_out: i32, size_out: i32) -> i32 {
    let entries = environ(caller.data());
    let size: usize = entries.iter().map(Vec::len).sum();
    let count = u32::try_from(entries.len()).unwrap_or(u32::MAX);
    let size = u32::try_from(size).unwrap_or(u32::MAX);
    errno(
        memory::write_u32(caller, count_out, count)
            .and_then(|()| memory::write_u32(caller, size_out, size)),
    )
}

fn environ_get(caller: &mut Ctx<'_>, pointers: i32, buffer: i32) -> i32 {
    let entries = environ(caller.data());
    let mut at = buffer;
    for (i, entry) in entries.iter().enumerate() {
        let Some(slot) = i32::try_from(i)
            .ok()
            .and_then(|i| i.checked_mul(4))
            .and_then(|o| pointers.checked_add(o))
        else {
            return FAULT;
        };
        if memory::write_u32(caller, slot, at.cast_unsigned())
            .and_then(|()| memory::write(caller, at, entry))
            .is_err()
        {
            return FAULT;
        }
        let Some(next) = i32::try_from(entry.len())
            .ok()
            .and_then(|l| at.checked_add(l))
        else {
            return FAULT;
        };
        at = next;
    }
    SUCCESS
}

/// `clock_time_get(id, precision, out)`: realtime (0) and monotonic (1) on the virtual clock.
fn clock_time_get(caller: &mut Ctx<'_>, id: i32, out: i32) -> i32 {
    let state = caller.data();
    let now = state.shared.now();
    let value = match id {
        0 => state.plugin.epoch_nanos.saturating_add(now),
        1 => now,
        _ => return INVAL,
    };
    errno(memory::write_u64(caller, out, value))
}

/// `random_get(buf, len)`: deterministic bytes (a per-VM splitmix64 stream), at most 64 KiB
/// per call.
fn random_get(caller: &mut Ctx<'_>, buf: i32, len: i32) -> i32 {
    let Ok(len) = usize::try_from(len) else {
        return INVAL;
    };
    if len > MAX_RANDOM {
        return INVAL;
    }
    let state = caller.data_mut();
    let mut bytes = Vec::with_capacity(len);
    while bytes.len() < len {
        state.random = state.random.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state.random;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        bytes.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    bytes.truncate(len);
    errno(memory::write(caller, buf, &bytes))
}

/// Links the subset under `module`.
pub(super) fn add(linker: &mut Linker<VmState>, module: &str) -> wasmtime::Result<()> {
    linker.func_wrap(
        module,
        "fd_write",
        |mut c: Ctx<'_>, fd: i32, iovs: i32, n: i32, out: i32| fd_write(&mut c, fd, iovs, n, out),
    )?;
    linker.func_wrap(
        module,
        "fd_read",
        |_: Ctx<'_>, _: i32, _: i32, _: i32, _: i32| BADF,
    )?;
    linker.func_wrap(module, "fd_close", |_: Ctx<'_>, _: i32| BADF)?;
    linker.func_wrap(
        module,
        "fd_seek",
        |_: Ctx<'_>, _: i32, _: i64, _: i32, _: i32| BADF,
    )?;
    linker.func_wrap(
        module,
        "fd_fdstat_get",
        |mut c: Ctx<'_>, fd: i32, out: i32| {
            if !(0..=2).contains(&fd) {
                return BADF;
            }
            // filetype CHARACTER_DEVICE (2), no flags, rights: fd_write only.
            let mut stat = [0u8; 24];
            stat[0] = 2;
            stat[8] = 1 << 6;
            errno(memory::write(&mut c, out, &stat))
        },
    )?;
    linker.func_wrap(module, "fd_prestat_get", |_: Ctx<'_>, _: i32, _: i32| BADF)?;
    linker.func_wrap(
        module,
        "fd_prestat_dir_name",
        |_: Ctx<'_>, _: i32, _: i32, _: i32| BADF,
    )?;
    linker.func_wrap(
        module,
        "environ_sizes_get",
        |mut c: Ctx<'_>, count: i32, size: i32| environ_sizes_get(&mut c, count, size),
    )?;
    linker.func_wrap(
        module,
        "environ_get",
        |mut c: Ctx<'_>, pointers: i32, buffer: i32| environ_get(&mut c, pointers, buffer),
    )?;
    linker.func_wrap(
        module,
        "args_sizes_get",
        |mut c: Ctx<'_>, count: i32, size: i32| {
            errno(
                memory::write_u32(&mut c, count, 0)
                    .and_then(|()| memory::write_u32(&mut c, size, 0)),
            )
        },
    )?;
    linker.func_wrap(module, "args_get", |_: Ctx<'_>, _: i32, _: i32| SUCCESS)?;
    linker.func_wrap(
        module,
        "clock_time_get",
        |mut c: Ctx<'_>, id: i32, _precision: i64, out: i32| clock_time_get(&mut c, id, out),
    )?;
    linker.func_wrap(
        module,
        "clock_res_get",
        |mut c: Ctx<'_>, _id: i32, out: i32| errno(memory::write_u64(&mut c, out, 1)),
    )?;
    linker.func_wrap(
        module,
        "random_get",
        |mut c: Ctx<'_>, buf: i32, len: i32| random_get(&mut c, buf, len),
    )?;
    linker.func_wrap(module, "sched_yield", |_: Ctx<'_>| SUCCESS)?;
    linker.func_wrap(
        module,
        "poll_oneoff",
        |_: Ctx<'_>, _: i32, _: i32, _: i32, _: i32| NOSYS,
    )?;
    linker.func_wrap(
        module,
        "proc_exit",
        |_: Ctx<'_>, code: i32| -> wasmtime::Result<()> {
            Err(wasmtime::Error::msg(format!(
                "the module called proc_exit({code})"
            )))
        },
    )?;
    Ok(())
}
