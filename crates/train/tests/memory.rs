//! Long runs do not grow memory: trainings that fine-tune clones of one start model, as the
//! meta-loop's K trainings per iteration do, leave nothing behind once they are dropped.
//! Live heap bytes are counted by this test binary's allocator.

// A global allocator is an `unsafe` trait; this one only forwards to the system's.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use l2s_train::{BackendChoice, CountingCnnConfig, Dataset, TrainConfig, train_counting, training_device};

/// The system allocator, keeping count of the bytes allocated and not yet freed.
/// SAFETY (every method): the caller's contract is passed on to `System` unchanged.
struct CountingAllocator;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

#[test]
fn fine_tuning_one_start_model_again_and_again_leaves_no_memory_behind() {
    let device = training_device(BackendChoice::Cpu).expect("the CPU needs no adapter");
    let data = Dataset::squares(8, 32, 1);
    let config = TrainConfig { epochs: 2, batch_size: 4, learning_rate: 1e-3, seed: 1 };
    let start = CountingCnnConfig::new().init(&device);
    let train = || train_counting(&device, &config, &data, Some(start.clone())).expect("trains");
    // Two at a time, as the meta-loop runs them on two cores.
    let train_pairs = |pairs: usize| {
        for _ in 0..pairs {
            rayon::join(train, train);
        }
        LIVE_BYTES.load(Ordering::Relaxed)
    };
    // The first trainings fill caches that stay (thread pools, scratch buffers, tables).
    let warm = train_pairs(5);
    let later = train_pairs(25);
    println!("live bytes: {warm} after 10 trainings, {later} after 60");
    // Threads may leave a table a few hundred bytes larger or smaller; a leak of one autodiff
    // node per parameter and training would leave 300 KiB here.
    assert!(later - warm < 32 << 10, "50 trainings left {} bytes behind", later - warm);
}
