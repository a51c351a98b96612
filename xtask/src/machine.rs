//! The machine a benchmark runs on, printed with its figures: absolute figures move 2–4x
//! between machines of the same kind (AVX-512 or only AVX2, VM neighbours), so every
//! figure is read next to the CPU that produced it.

/// One line naming the CPU: model, logical cores and its widest SIMD (AVX-512, AVX2 or
/// neither), from `/proc/cpuinfo`'s text.
pub fn summary(cpuinfo: &str) -> String {
    let entries = || {
        cpuinfo.lines().filter_map(|line| line.split_once(':')).map(|(key, value)| (key.trim(), value.trim()))
    };
    let field = |name: &str| entries().find(|(key, _)| *key == name).map(|(_, value)| value);
    let model = field("model name").unwrap_or("unknown CPU");
    let cores = entries().filter(|(key, _)| *key == "processor").count();
    let flags = field("flags").unwrap_or_default();
    let has = |flag: &str| flags.split_whitespace().any(|f| f == flag);
    let simd = if has("avx512f") {
        "AVX-512"
    } else if has("avx2") {
        "AVX2, no AVX-512"
    } else {
        "no AVX2"
    };
    format!("{model}, {cores} logical cores, {simd}")
}

/// [`summary`] of this machine, or why it is unknown.
pub fn this_machine() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .map(|text| summary(&text))
        .unwrap_or_else(|e| format!("unknown CPU (/proc/cpuinfo: {e})"))
}

#[cfg(test)]
mod tests {
    use super::summary;

    #[test]
    fn names_model_cores_and_widest_simd() {
        let core = |n: u32, flags: &str| {
            format!("processor\t: {n}\nmodel name\t: AMD EPYC 9B14\nflags\t\t: fpu sse2 {flags}\n\n")
        };
        let avx512 = format!("{}{}", core(0, "avx2 avx512f avx512bw"), core(1, "avx2 avx512f avx512bw"));
        assert_eq!(summary(&avx512), "AMD EPYC 9B14, 2 logical cores, AVX-512");
        assert_eq!(summary(&core(0, "avx avx2 fma")), "AMD EPYC 9B14, 1 logical cores, AVX2, no AVX-512");
        assert_eq!(summary(&core(0, "sse4_2")), "AMD EPYC 9B14, 1 logical cores, no AVX2");
        assert_eq!(summary(""), "unknown CPU, 0 logical cores, no AVX2");
    }
}
