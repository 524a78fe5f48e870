//! Which cores the embedded target's threads run on.
//!
//! An embedded run has three kinds of threads: the agents' workers, the
//! generators that send to them, and the tool's own (sampler, progress,
//! the runtime's telemetry ticker). On the 2-core development VM, a
//! generator waking an agent worker parked on the *other* core is what the
//! `peak` scenario's p99 is made of: the other vCPU has to be woken first.
//! With both on one core the hand-off stays local (decision 0010). So by
//! default the generators share the agents' cores, the last `workers` of
//! the cores this process may use, and the tool's threads keep the rest.
//!
//! Linux only; elsewhere nothing is pinned.

/// The cores this process may run on, in ascending order; empty where the
/// OS does not say.
pub fn allowed() -> Vec<usize> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `set` is a plain bit set, written by the kernel.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) };
        if rc != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            // SAFETY: `cpu` is below CPU_SETSIZE.
            .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
            .collect()
    }
    #[cfg(not(target_os = "linux"))]
    {
        Vec::new()
    }
}

/// The cores for the agents' workers and the generators when `workers`
/// worker threads run beside the tool: the last `workers` allowed cores, if
/// at least one more is left for the tool (the first ones take more of the
/// system's own work: on the development VM core 0 gave a p99 of 0.14-1.06
/// ms over six `peak` runs, core 1 0.18-0.61 ms). `None`: nothing pinned.
pub fn load_cores(workers: usize) -> Option<Vec<usize>> {
    let allowed = allowed();
    (workers > 0 && workers < allowed.len()).then(|| allowed[allowed.len() - workers..].to_vec())
}

/// Pins the calling thread to `cores` until dropped, then restores the
/// cores it was allowed before (a generator runs on a pooled thread that
/// serves other work afterwards).
#[must_use = "the pin ends when the guard is dropped"]
pub struct Pinned {
    before: Vec<usize>,
}

impl Pinned {
    /// Pins the calling thread; best effort (an OS refusal leaves it as it was).
    pub fn to(cores: &[usize]) -> Pinned {
        let before = allowed();
        set_current(cores);
        Pinned { before }
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        if !self.before.is_empty() {
            set_current(&self.before);
        }
    }
}

/// Restricts the calling thread to `cores`; false if the OS refused.
pub fn set_current(cores: &[usize]) -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `set` is a plain bit set; every index is checked below
        // CPU_SETSIZE before CPU_SET.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        for &cpu in cores.iter().filter(|&&c| c < libc::CPU_SETSIZE as usize) {
            unsafe { libc::CPU_SET(cpu, &mut set) };
        }
        (unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) }) == 0
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = cores;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_split_leaves_a_core_to_the_tool_and_a_pin_is_undone() {
        let all = allowed();
        if all.is_empty() {
            return; // not Linux: nothing is pinned
        }
        assert_eq!(load_cores(all.len()), None, "no core left for the tool");
        assert_eq!(load_cores(0), None);
        if all.len() >= 2 {
            assert_eq!(load_cores(1), Some(vec![all[all.len() - 1]]));
            // On a thread of its own: the pin must not leak into other tests.
            std::thread::spawn(move || {
                {
                    let _pin = Pinned::to(&all[..1]);
                    assert_eq!(allowed(), all[..1]);
                }
                assert_eq!(allowed(), all);
            })
            .join()
            .expect("pin thread");
        }
    }
}
