//! Which burn device trains the main task models.

use std::task::{Context, Poll, Waker};

use burn::tensor::{Device, DeviceKind};

/// Which burn device trains the main task models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum BackendChoice {
    /// A hardware GPU through wgpu when there is one, else the CPU.
    #[default]
    Auto,
    /// burn's `flex` CPU backend.
    Cpu,
    /// wgpu on the default adapter (which is Mesa's lavapipe on a machine without a GPU).
    Wgpu,
}

impl std::str::FromStr for BackendChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "wgpu" => Ok(Self::Wgpu),
            other => Err(format!("unknown backend `{other}`; choose auto, cpu or wgpu")),
        }
    }
}

/// A hardware GPU adapter (discrete, integrated or virtual) that wgpu can see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HardwareGpu {
    pub name: String,
    pub kind: DeviceKind,
}

/// The best hardware GPU on this machine, if any; software adapters (lavapipe) do not count.
pub fn hardware_gpu() -> Option<HardwareGpu> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let mut adapters = std::pin::pin!(instance.enumerate_adapters(wgpu::Backends::all()));
    // Native wgpu answers at once; a pending answer counts as no adapter.
    let adapters = match adapters.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(adapters) => adapters,
        Poll::Pending => Vec::new(),
    };
    let infos: Vec<wgpu::AdapterInfo> = adapters.iter().map(wgpu::Adapter::get_info).collect();
    // burn numbers the GPUs of each kind in wgpu's order.
    let index_of = |kind: wgpu::DeviceType, name: &str| {
        infos.iter().filter(|i| i.device_type == kind).position(|i| i.name == name).unwrap_or(0)
    };
    [wgpu::DeviceType::DiscreteGpu, wgpu::DeviceType::IntegratedGpu, wgpu::DeviceType::VirtualGpu]
        .into_iter()
        .find_map(|kind| infos.iter().find(|i| i.device_type == kind))
        .map(|info| HardwareGpu {
            name: info.name.clone(),
            kind: match info.device_type {
                wgpu::DeviceType::DiscreteGpu => {
                    DeviceKind::DiscreteGpu(index_of(info.device_type, &info.name))
                }
                wgpu::DeviceType::IntegratedGpu => {
                    DeviceKind::IntegratedGpu(index_of(info.device_type, &info.name))
                }
                _ => DeviceKind::VirtualGpu(index_of(info.device_type, &info.name)),
            },
        })
}

/// The device for `choice`, with autodiff enabled for training.
///
/// `Auto` takes a hardware GPU through wgpu when there is one and burn's CPU backend
/// otherwise: it never picks a software adapter such as lavapipe, which trains 5x slower
/// than `flex` (../shared/feasibility.md). `Wgpu` takes wgpu's default adapter, whatever it is.
pub fn training_device(choice: BackendChoice) -> Device {
    let device = match choice {
        BackendChoice::Cpu => cpu_device(),
        BackendChoice::Wgpu => Device::wgpu(DeviceKind::DefaultDevice).autodiff(),
        BackendChoice::Auto => match hardware_gpu() {
            Some(gpu) => {
                tracing::info!(adapter = %gpu.name, "backend auto: hardware GPU found, training with wgpu");
                Device::wgpu(gpu.kind).autodiff()
            }
            None => {
                tracing::info!("backend auto: no hardware GPU, training on the CPU (flex)");
                cpu_device()
            }
        },
    };
    tracing::info!("main task models train on {device:?} (backend choice: {choice:?})");
    device
}

fn cpu_device() -> Device {
    keep_freed_blocks_for_reuse();
    Device::flex().autodiff()
}

/// On the CPU every training step allocates and frees activations and im2col buffers of
/// megabytes. glibc's malloc serves such blocks from fresh mappings above its (dynamic)
/// mmap threshold and gives them back on free, so each step page-faults and zeroes them
/// again; whether it does depended on the heap's history (the same benchmark binary ran at
/// 1,900 or 3,400 images/s depending on its environment variables, with 3x the page
/// faults in the slow case). Fixed thresholds keep freed blocks in the heap for the next
/// step: process-wide, memory stays bounded by the peak of what is live at once.
fn keep_freed_blocks_for_reuse() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // glibc's upper limit for the mmap threshold (64-bit): 32 MiB.
            const MMAP_THRESHOLD: libc::c_int = 32 << 20;
            const TRIM_THRESHOLD: libc::c_int = 256 << 20;
            // SAFETY: mallopt only sets glibc's allocator parameters, which it reads under
            // its own lock; no memory is touched.
            #[allow(unsafe_code)]
            let set = unsafe {
                [libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD), libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD)]
            };
            if set != [1, 1] {
                tracing::warn!("glibc refused the allocator thresholds (mallopt returned {set:?}); CPU training may page-fault more");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Tensor;

    /// The CPU backend builds and differentiates: d/dx Σ x² = 2x.
    #[test]
    fn cpu_backend_computes_gradients() {
        let device = training_device(BackendChoice::Cpu);
        let x = Tensor::<1>::from_floats([1.0, -2.0, 3.0], &device).require_grad();
        let grads = (x.clone() * x.clone()).sum().backward();
        let grad = x.grad(&grads).expect("x is tracked").into_data().try_to_vec::<f32>().expect("f32 data");
        assert_eq!(grad, vec![2.0, -4.0, 6.0]);
    }

    #[test]
    fn backend_names_parse() {
        assert_eq!("cpu".parse(), Ok(BackendChoice::Cpu));
        assert!("cuda".parse::<BackendChoice>().is_err());
    }
}
