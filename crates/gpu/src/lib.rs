//! The graphics adapters wgpu sees, ranked one way for both of l2s's GPU users: the
//! renderer takes the first ([`best`]), the training backend's `Auto` the first hardware
//! one ([`best_hardware`]).
//!
//! Ranking: discrete GPU, integrated, virtual, other, then software (`Cpu`: Mesa's
//! lavapipe), as Bevy's high-performance preference orders them; ties keep wgpu's order.

use std::task::{Context, Poll, Waker};

pub use wgpu::DeviceType;

/// One adapter as wgpu reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adapter {
    pub name: String,
    /// wgpu's backend (`Vulkan`, `Metal`, …).
    pub backend: String,
    pub device_type: wgpu::DeviceType,
    /// Its position among wgpu's adapters of the same device type: how burn numbers the
    /// GPUs of each kind.
    pub index_of_type: usize,
}

impl Adapter {
    /// A real GPU (discrete, integrated or virtual), not a software renderer.
    pub fn is_hardware(&self) -> bool {
        matches!(
            self.device_type,
            wgpu::DeviceType::DiscreteGpu | wgpu::DeviceType::IntegratedGpu | wgpu::DeviceType::VirtualGpu
        )
    }

    /// "Cpu" for software renderers such as lavapipe.
    pub fn device_type_name(&self) -> String {
        format!("{:?}", self.device_type)
    }
}

fn rank(device_type: wgpu::DeviceType) -> u8 {
    match device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

/// `found` (name, backend, type) in wgpu's order, ranked best first (see the crate docs).
fn ranked(found: Vec<(String, String, wgpu::DeviceType)>) -> Vec<Adapter> {
    let mut adapters: Vec<Adapter> = found
        .iter()
        .enumerate()
        .map(|(i, (name, backend, device_type))| Adapter {
            name: name.clone(),
            backend: backend.clone(),
            device_type: *device_type,
            index_of_type: found[..i].iter().filter(|o| o.2 == *device_type).count(),
        })
        .collect();
    adapters.sort_by_key(|a| rank(a.device_type));
    adapters
}

/// Every adapter wgpu sees on any backend, best first.
pub fn adapters() -> Vec<Adapter> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let mut pending = std::pin::pin!(instance.enumerate_adapters(wgpu::Backends::all()));
    // Native wgpu answers at once; a pending answer counts as no adapter.
    let found = match pending.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(adapters) => adapters
            .iter()
            .map(|a| {
                let info = a.get_info();
                (info.name, format!("{:?}", info.backend), info.device_type)
            })
            .collect(),
        Poll::Pending => Vec::new(),
    };
    ranked(found)
}

/// The adapter the renderer uses, if there is any.
pub fn best() -> Option<Adapter> {
    adapters().into_iter().next()
}

/// The best hardware GPU, if any; software adapters do not count.
pub fn best_hardware() -> Option<Adapter> {
    adapters().into_iter().find(Adapter::is_hardware)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, device_type: wgpu::DeviceType) -> (String, String, wgpu::DeviceType) {
        (name.into(), "Vulkan".into(), device_type)
    }

    #[test]
    fn hardware_ranks_before_software_and_keeps_its_index_among_its_kind() {
        let adapters = ranked(vec![
            info("llvmpipe", wgpu::DeviceType::Cpu),
            info("igpu", wgpu::DeviceType::IntegratedGpu),
            info("dgpu-a", wgpu::DeviceType::DiscreteGpu),
            info("dgpu-b", wgpu::DeviceType::DiscreteGpu),
        ]);
        let order: Vec<(&str, usize)> = adapters.iter().map(|a| (a.name.as_str(), a.index_of_type)).collect();
        assert_eq!(order, [("dgpu-a", 0), ("dgpu-b", 1), ("igpu", 0), ("llvmpipe", 0)]);
        assert!(adapters[0].is_hardware() && !adapters[3].is_hardware());
        assert_eq!(adapters[3].device_type_name(), "Cpu");
    }

    #[test]
    fn a_machine_with_only_a_software_adapter_has_no_hardware_gpu() {
        let adapters = ranked(vec![info("llvmpipe", wgpu::DeviceType::Cpu)]);
        assert_eq!(adapters.into_iter().find(Adapter::is_hardware), None);
    }
}
