//! Convolution + ReLU under burn's autodiff: one tracked operation whose backward calls
//! [`ConvReluBackend::conv2d_relu_backward`] of the inner backend.

use burn::backend::Autodiff;
use burn::backend::Backend;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::tensor::ops::ConvOptions;

use super::ConvReluBackend;

#[derive(Debug)]
struct ConvReluBackward;

impl<B: Backend + ConvReluBackend> Backward<B, 3> for ConvReluBackward {
    /// Input, weight, bias, output, options.
    type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, ConvOptions<2>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node_x, node_weight, node_bias] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x, weight, bias, output, options) = ops.state;
        let (dx, dw, db) = B::conv2d_relu_backward(x, weight, bias, output, grad, options, node_x.is_some());
        if let (Some(node), Some(dx)) = (node_x, dx) {
            grads.register::<B>(node.id, dx);
        }
        if let Some(node) = node_weight {
            grads.register::<B>(node.id, dw);
        }
        if let Some(node) = node_bias {
            grads.register::<B>(node.id, db);
        }
    }
}

impl<B: Backend + ConvReluBackend, C: CheckpointStrategy> ConvReluBackend for Autodiff<B, C> {
    fn conv2d_relu(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        let (x, x_node) = x.into_parts();
        let (weight, weight_node) = weight.into_parts();
        let (bias, bias_node) = bias.into_parts();
        match ConvReluBackward.prepare::<C>([x_node, weight_node, bias_node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let output = B::conv2d_relu(x.clone(), weight.clone(), bias.clone(), options.clone());
                prep.finish((x, weight, bias, output.clone(), options), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::conv2d_relu(x, weight, bias, options)),
        }
    }
}
