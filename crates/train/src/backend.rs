//! Which burn device trains the main task models.

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

/// burn's device for a hardware GPU adapter.
fn gpu_device_kind(adapter: &l2s_gpu::Adapter) -> DeviceKind {
    match adapter.device_type {
        l2s_gpu::DeviceType::DiscreteGpu => DeviceKind::DiscreteGpu(adapter.index_of_type),
        l2s_gpu::DeviceType::IntegratedGpu => DeviceKind::IntegratedGpu(adapter.index_of_type),
        _ => DeviceKind::VirtualGpu(adapter.index_of_type),
    }
}

/// Why no training device could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    #[error(
        "the wgpu backend needs a graphics adapter and wgpu sees none\n  hint: install a Vulkan driver (`sudo apt-get install -y mesa-vulkan-drivers libvulkan1` for the software renderer lavapipe), or train on the CPU (`--backend cpu`, or `backend: Cpu` in the config; `auto` picks the CPU where there is no GPU)"
    )]
    NoAdapter,
}

/// The device for `choice`, with autodiff enabled for training.
///
/// `Auto` takes a hardware GPU through wgpu when there is one and burn's CPU backend
/// otherwise: it never picks a software adapter such as lavapipe, which trains 5x slower
/// than `flex` (../shared/feasibility.md). `Wgpu` takes wgpu's default adapter, whatever it
/// is, and fails with [`BackendError::NoAdapter`] where there is none (burn would panic).
pub fn training_device(choice: BackendChoice) -> Result<Device, BackendError> {
    let device = match choice {
        BackendChoice::Cpu => cpu_device(),
        BackendChoice::Wgpu if l2s_gpu::best().is_none() => return Err(BackendError::NoAdapter),
        BackendChoice::Wgpu => Device::wgpu(DeviceKind::DefaultDevice).autodiff(),
        BackendChoice::Auto => match l2s_gpu::best_hardware() {
            Some(gpu) => {
                tracing::info!(adapter = %gpu.name, "backend auto: hardware GPU found, training with wgpu");
                Device::wgpu(gpu_device_kind(&gpu)).autodiff()
            }
            None => {
                tracing::info!("backend auto: no hardware GPU, training on the CPU (flex)");
                cpu_device()
            }
        },
    };
    tracing::info!("main task models train on {device:?} (backend choice: {choice:?})");
    Ok(device)
}

fn cpu_device() -> Device {
    Device::flex().autodiff()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Tensor;

    /// The CPU backend builds and differentiates: d/dx Σ x² = 2x.
    #[test]
    fn cpu_backend_computes_gradients() {
        let device = training_device(BackendChoice::Cpu).expect("the CPU needs no adapter");
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
