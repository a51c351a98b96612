//! 2-D convolution followed by ReLU as one operation, through burn's backend-extension
//! API, with forward and backward written as GEMMs over an im2col on the CPU backend.
//!
//! Every 3x3 convolution of the main task models is followed by a ReLU. On burn's `flex`
//! backend the separate operations cost a layout change to NHWC and back, a bias pass, a
//! ReLU pass each way, and burn's generic weight gradient (a convolution with the output
//! gradient as a dilated kernel: GEMMs with a huge inner and tiny outer dimensions); see
//! BENCHMARKS.md. Here activations are NHWC (exposed to burn as NCHW views, so a chain of
//! these layers never transposes), and for a block of output positions with `col[rows ×
//! kh·kw·Ci]` its im2col (each kernel row's taps one run of NHWC input):
//! - forward: `Y = relu(col · Wᵀ + bias)`, `Y[rows × Co]` being the NHWC output itself;
//! - backward, with `G = dY ⊙ [Y > 0]`: `dW = Σ Gᵀ · col`, `dbias = Σ G`,
//!   `dX = col2im(G · W)`,
//!
//! with the `gemm` crate flex itself uses, blocks of whole images in parallel on rayon. The
//! backward builds the im2col again rather than keeping the forward's: keeping it cost
//! more (allocating and zeroing it, then reading it back from memory) than it saved. An
//! NCHW input with few channels (the RGB batch into the first layer) is read as it is,
//! with a transposed im2col whose runs are output rows ([`Columns::Planar`]).
//! GPU backends keep burn's kernels (the trait's default bodies).

mod autodiff;
mod flex;
mod geometry;
mod passes;

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Cube, Dispatch, backend_extension};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;
use burn::tensor::ops::ConvOptions;

/// The gradients of [`ConvReluBackend::conv2d_relu`]: input (when asked for), weight, bias.
pub type ConvReluGrads<B> = (Option<FloatTensor<B>>, FloatTensor<B>, FloatTensor<B>);

/// Convolution + ReLU, the layer the main task models are built of.
#[backend_extension(Flex, Cube, Autodiff)]
pub trait ConvReluBackend: Backend {
    /// `relu(conv2d(x, weight) + bias)`.
    fn conv2d_relu(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        burn_conv2d_relu::<Self>(x, weight, bias, options)
    }

    /// The gradients of [`ConvReluBackend::conv2d_relu`] for the gradient `output_grad` of
    /// its `output`; the input's only when `input_grad`.
    fn conv2d_relu_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        output: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
        input_grad: bool,
    ) -> (Option<FloatTensor<Self>>, FloatTensor<Self>, FloatTensor<Self>) {
        burn_conv2d_relu_backward::<Self>(x, weight, bias, output, output_grad, options, input_grad)
    }
}

/// burn's own operations: the GPU path, and the CPU's for what the GEMM path does not take.
pub(super) fn burn_conv2d_relu<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    bias: FloatTensor<B>,
    options: ConvOptions<2>,
) -> FloatTensor<B> {
    B::relu(B::conv2d(x, weight, Some(bias), options))
}

pub(super) fn burn_conv2d_relu_backward<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    bias: FloatTensor<B>,
    output: FloatTensor<B>,
    output_grad: FloatTensor<B>,
    options: ConvOptions<2>,
    input_grad: bool,
) -> ConvReluGrads<B> {
    let grad = B::relu_backward(output, output_grad);
    let dx =
        input_grad.then(|| B::conv2d_x_backward(x.clone(), weight.clone(), grad.clone(), options.clone()));
    let dw = B::conv2d_weight_backward(x.clone(), weight, grad.clone(), options);
    (dx, dw, B::conv2d_bias_backward(x, bias, grad))
}

/// GPUs keep burn's kernels.
impl ConvReluBackend for Cube {}

/// `relu(conv(x))` through [`ConvReluBackend::conv2d_relu`] for convolutions with a bias
/// and explicit padding (the main task models' kind); else burn's own operations.
pub fn forward_relu(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let (Some(bias), PaddingConfig2d::Explicit(top, left, bottom, right)) = (&conv.bias, &conv.padding)
    else {
        return burn::tensor::activation::relu(conv.forward(x));
    };
    let options = ConvOptions::new_with_padding(
        conv.stride,
        [(*top, *bottom), (*left, *right)],
        conv.dilation,
        conv.groups,
    );
    Tensor::from_dispatch(<Dispatch as ConvReluBackend>::conv2d_relu(
        x.into_dispatch(),
        conv.weight.val().into_dispatch(),
        bias.val().into_dispatch(),
        options,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::TensorData;
    use burn::tensor::activation::relu;

    fn max_difference(a: Tensor<4>, b: Tensor<4>) -> f32 {
        (a - b).abs().max().into_scalar::<f32>()
    }

    /// Same output and same gradients for input, weight and bias as burn's convolution
    /// and ReLU, for the strides, paddings, dilations and channel counts the models use and
    /// a few they do not (asymmetric padding, a batch that is not a multiple of the task).
    #[test]
    fn matches_burns_convolution_and_relu_and_their_gradients() {
        let device = burn::tensor::Device::flex().autodiff();
        let cases = [
            // (channels in, out, kernel, stride, dilation, padding top/left/bottom/right, batch, h, w)
            (3, 8, 3, 2, 1, (1, 1, 1, 1), 3, 11, 9),
            (5, 4, 3, 1, 1, (1, 1, 1, 1), 6, 8, 8),
            (4, 6, 3, 2, 1, (0, 2, 0, 2), 5, 11, 9),
            (2, 3, 3, 1, 2, (2, 1, 0, 1), 2, 9, 10),
            (3, 5, 2, 3, 1, (0, 0, 1, 1), 4, 10, 7),
            // Output rows longer than the NHWC kernel rows: the planar im2col.
            (3, 8, 3, 2, 1, (1, 1, 1, 1), 3, 7, 40),
            (2, 4, 3, 1, 2, (2, 1, 0, 1), 2, 6, 33),
            (3, 5, 2, 3, 1, (0, 0, 1, 1), 4, 5, 50),
        ];
        let with_and_without_input_gradient = cases.iter().flat_map(|case| [(*case, true), (*case, false)]);
        for (
            (channels_in, channels_out, kernel, stride, dilation, (top, left, bottom, right), batch, h, w),
            input_grad,
        ) in with_and_without_input_gradient
        {
            // Weights through the trainings' seeding lock: other tests of this process
            // draw from the same generator at the same time.
            let conv = crate::training::fresh(&device, 7, |device| {
                Conv2dConfig::new([channels_in, channels_out], [kernel, kernel])
                    .with_stride([stride, stride])
                    .with_dilation([dilation, dilation])
                    .with_padding(PaddingConfig2d::Explicit(top, left, bottom, right))
                    .init(device)
            });
            let shape = [batch, channels_in, h, w];
            let values: Vec<f32> =
                (0..shape.iter().product::<usize>()).map(|i| (i as f32 * 0.37).sin()).collect();
            let x =
                Tensor::<4>::from_data(TensorData::new(values, shape), &device).set_require_grad(input_grad);
            let target = |y: Tensor<4>| (y.clone() * y.clone().sin()).sum();
            let case = format!(
                "{channels_in}→{channels_out}, k {kernel}, s {stride}, d {dilation}, {h}x{w}, input gradient {input_grad}"
            );

            let ours = forward_relu(&conv, x.clone());
            let theirs = relu(conv.forward(x.clone()));
            assert_eq!(ours.dims(), theirs.dims(), "{case}");
            let dy = max_difference(ours.clone(), theirs.clone());
            assert!(dy < 1e-5, "output differs by {dy} ({case})");

            let grads_ours = target(ours).backward();
            let grads_theirs = target(theirs).backward();
            let grad = |g: &burn::tensor::Gradients, t: &Tensor<4>| t.grad(g).expect("gradient");
            if input_grad {
                let dx = max_difference(grad(&grads_ours, &x), grad(&grads_theirs, &x));
                assert!(dx < 1e-4, "input gradient differs by {dx} ({case})");
            }
            let weight = conv.weight.val();
            let dw = max_difference(grad(&grads_ours, &weight), grad(&grads_theirs, &weight));
            assert!(dw < 1e-3, "weight gradient differs by {dw} ({case})");
            let bias = conv.bias.as_ref().expect("bias").val();
            let db = (bias.grad(&grads_ours).expect("bias gradient")
                - bias.grad(&grads_theirs).expect("bias gradient"))
            .abs()
            .max()
            .into_scalar::<f32>();
            assert!(db < 1e-3, "bias gradient differs by {db} ({case})");
        }
    }

    /// Two layers in a row, as in the models: the second takes the first's NHWC output
    /// (an NCHW view of NHWC values) and hands its input gradient back in the same form;
    /// burn's operations read both views. Same results and gradients as burn's layers.
    #[test]
    fn chained_layers_pass_nhwc_views_between_them() {
        let device = burn::tensor::Device::flex().autodiff();
        let layer = |c_in, c_out, stride, seed| {
            crate::training::fresh(&device, seed, |device| {
                Conv2dConfig::new([c_in, c_out], [3, 3])
                    .with_stride([stride, stride])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                    .init(device)
            })
        };
        let (first, second) = (layer(3, 6, 2, 3), layer(6, 5, 1, 4));
        let shape = [3, 3, 10, 12];
        let values: Vec<f32> =
            (0..shape.iter().product::<usize>()).map(|i| (i as f32 * 0.61).cos()).collect();
        let x = Tensor::<4>::from_data(TensorData::new(values, shape), &device).require_grad();
        // A loss that reads the output both through a reduction and element by element.
        let target = |y: Tensor<4>| (y.clone() * y.clone().sin()).sum() + y.mean_dim(3).sum();

        let ours = forward_relu(&second, forward_relu(&first, x.clone()));
        let theirs = relu(second.forward(relu(first.forward(x.clone()))));
        let dy = max_difference(ours.clone(), theirs.clone());
        assert!(dy < 1e-5, "output differs by {dy}");
        let (grads_ours, grads_theirs) = (target(ours).backward(), target(theirs).backward());
        let grad = |g: &burn::tensor::Gradients, t: &Tensor<4>| t.grad(g).expect("gradient");
        let dx = max_difference(grad(&grads_ours, &x), grad(&grads_theirs, &x));
        assert!(dx < 1e-4, "input gradient differs by {dx}");
        for (name, conv) in [("first", &first), ("second", &second)] {
            let weight = conv.weight.val();
            let dw = max_difference(grad(&grads_ours, &weight), grad(&grads_theirs, &weight));
            assert!(dw < 1e-3, "{name} layer's weight gradient differs by {dw}");
        }
    }
}
