//! Which burn device trains the main task models.

use burn::tensor::{Device, DeviceKind};

/// Which burn device trains the main task models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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

/// The device for `choice`, with autodiff enabled for training.
///
/// `Auto` resolves to the CPU until adapter probing lands with the models: on the
/// machines this project runs on without a GPU, wgpu would pick lavapipe, which trains
/// 5x slower than `flex` (../shared/feasibility.md).
pub fn training_device(choice: BackendChoice) -> Device {
    let device = match choice {
        BackendChoice::Auto | BackendChoice::Cpu => Device::flex().autodiff(),
        BackendChoice::Wgpu => Device::wgpu(DeviceKind::DefaultDevice).autodiff(),
    };
    tracing::info!("main task models train on {device:?} (backend choice: {choice:?})");
    device
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
