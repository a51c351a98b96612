//! 2-D convolution whose weight gradient on the CPU backend is one GEMM per image over an
//! im2col of the input, through burn's backend-extension API.
//!
//! burn's `flex` backend has a fast im2col forward and transposed convolution, but not a
//! weight gradient of its own: burn's generic one convolves the input with the output
//! gradient as a dilated kernel, GEMMs with a huge inner and tiny outer dimensions, and was
//! half of the convolution time (BENCHMARKS.md). Here the weight gradient is
//! dW[Co, Ci·kh·kw] = Σ_b dY_b[Co, Ho·Wo] · col_bᵀ[Ho·Wo, Ci·kh·kw] with the `gemm` crate
//! flex itself uses. The forward and the input gradient stay burn's; on GPU backends
//! everything does.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::ModuleOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Cube, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Tensor, TensorData};

/// The convolution operations the main task models take from their backend.
#[backend_extension(Flex, Cube, Autodiff)]
pub trait GemmConvBackend: Backend {
    /// A 2-D convolution with bias; autodiff takes its weight gradient from
    /// [`GemmConvBackend::gemm_conv2d_weight_grad`].
    fn gemm_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d(x, weight, Some(bias), options)
    }

    /// The gradient of the convolution's weight for the output gradient `output_grad`.
    fn gemm_conv2d_weight_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d_weight_backward(x, weight, output_grad, options)
    }
}

/// GPUs keep burn's kernels.
impl GemmConvBackend for Cube {}

impl GemmConvBackend for Flex {
    fn gemm_conv2d_weight_grad(
        x: FlexTensor,
        weight: FlexTensor,
        output_grad: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        let supported = options.groups == 1
            && x.dtype() == DType::F32
            && output_grad.dtype() == DType::F32
            && weight.dtype() == DType::F32;
        if !supported {
            return Self::conv2d_weight_backward(x, weight, output_grad, options);
        }
        let (x, output_grad) = (x.to_contiguous(), output_grad.to_contiguous());
        match (x.as_slice::<f32>(), output_grad.as_slice::<f32>()) {
            (Some(xs), Some(gs)) => {
                let dims = |s: burn::tensor::Shape| -> [usize; 4] { [s[0], s[1], s[2], s[3]] };
                let grad = weight_grad_f32(
                    xs,
                    dims(x.shape()),
                    gs,
                    dims(output_grad.shape()),
                    dims(weight.shape()),
                    &options,
                );
                FlexTensor::from_data(TensorData::new(grad, weight.shape()))
            }
            _ => Self::conv2d_weight_backward(x, weight, output_grad, options),
        }
    }
}

/// Images per unit of parallel work in the weight gradient. Fixed, not derived from the
/// thread count, so that the partial sums and their order, and so the result to the last
/// bit, are the same on any pool (concurrent trainings must match sequential ones).
const IMAGES_PER_TASK: usize = 8;

/// dW = Σ_b dY_b · col_bᵀ for contiguous NCHW `x` and `output_grad`: tasks of
/// [`IMAGES_PER_TASK`] images each accumulate their own partial dW, summed in task order.
fn weight_grad_f32(
    x: &[f32],
    [batch, channels_in, height, width]: [usize; 4],
    output_grad: &[f32],
    [_, channels_out, height_out, width_out]: [usize; 4],
    [_, _, kernel_h, kernel_w]: [usize; 4],
    options: &ConvOptions<2>,
) -> Vec<f32> {
    use rayon::prelude::*;
    let geometry = Im2col { channels_in, height, width, kernel_h, kernel_w, height_out, width_out };
    let (k, p) = (geometry.rows(), height_out * width_out);
    let partials: Vec<Vec<f32>> = (0..batch.div_ceil(IMAGES_PER_TASK))
        .into_par_iter()
        .map(|task| {
            let mut col = vec![0f32; k * p];
            let mut grad = vec![0f32; channels_out * k];
            let images = task * IMAGES_PER_TASK..((task + 1) * IMAGES_PER_TASK).min(batch);
            for (n, b) in images.enumerate() {
                geometry.fill(
                    &x[b * channels_in * height * width..][..channels_in * height * width],
                    options,
                    &mut col,
                );
                let dy = &output_grad[b * channels_out * p..][..channels_out * p];
                accumulate_product(&mut grad, dy, &col, [channels_out, k, p], n > 0);
            }
            grad
        })
        .collect();
    let mut partials = partials.into_iter();
    let mut grad = partials.next().unwrap_or_else(|| vec![0.0; channels_out * k]);
    for partial in partials {
        grad.iter_mut().zip(partial).for_each(|(g, q)| *g += q);
    }
    grad
}

/// The shape of one image's im2col matrix: `channels_in · kernel_h · kernel_w` rows of
/// `height_out · width_out` input values (zero where the kernel overhangs the padding).
struct Im2col {
    channels_in: usize,
    height: usize,
    width: usize,
    kernel_h: usize,
    kernel_w: usize,
    height_out: usize,
    width_out: usize,
}

impl Im2col {
    fn rows(&self) -> usize {
        self.channels_in * self.kernel_h * self.kernel_w
    }

    fn fill(&self, image: &[f32], options: &ConvOptions<2>, col: &mut [f32]) {
        let (p, [pad_h, pad_w]) = (self.height_out * self.width_out, options.padding_begin());
        for c in 0..self.channels_in {
            let plane = &image[c * self.height * self.width..][..self.height * self.width];
            for i in 0..self.kernel_h {
                for j in 0..self.kernel_w {
                    let row = &mut col[((c * self.kernel_h + i) * self.kernel_w + j) * p..][..p];
                    for oy in 0..self.height_out {
                        let dst = &mut row[oy * self.width_out..][..self.width_out];
                        let iy = (oy * options.stride[0] + i * options.dilation[0]).checked_sub(pad_h);
                        let Some(src) = iy
                            .filter(|&iy| iy < self.height)
                            .map(|iy| &plane[iy * self.width..][..self.width])
                        else {
                            dst.fill(0.0);
                            continue;
                        };
                        for (ox, d) in dst.iter_mut().enumerate() {
                            let ix = (ox * options.stride[1] + j * options.dilation[1]).checked_sub(pad_w);
                            *d = ix.and_then(|ix| src.get(ix)).copied().unwrap_or(0.0);
                        }
                    }
                }
            }
        }
    }
}

/// `grad[m × n] (+)= lhs[m × k] · rhsᵀ` with `rhs` stored `n × k`, all row-major;
/// `accumulate: false` overwrites `grad`.
// `gemm` is an unsafe API (raw pointers and strides); the asserts below pin the slice
// lengths to the strides given, and the result is tested against burn's.
#[allow(unsafe_code)]
fn accumulate_product(grad: &mut [f32], lhs: &[f32], rhs: &[f32], [m, n, k]: [usize; 3], accumulate: bool) {
    assert!(grad.len() >= m * n && lhs.len() >= m * k && rhs.len() >= n * k, "gemm operands too short");
    // SAFETY: dst is m × n with row stride n, lhs m × k with row stride k, rhsᵀ k × n read
    // from rhs (n × k, row stride k): every index is within the lengths asserted above.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            grad.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.as_ptr(),
            1,
            k as isize,
            rhs.as_ptr(),
            k as isize,
            1,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[derive(Debug)]
struct GemmConvBackward;

impl<B: Backend + GemmConvBackend> Backward<B, 3> for GemmConvBackward {
    type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, ConvOptions<2>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node_x, node_weight, node_bias] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x, weight, bias, options) = ops.state;
        if let Some(node) = node_x {
            let dx = B::conv2d_x_backward(x.clone(), weight.clone(), grad.clone(), options.clone());
            grads.register::<B>(node.id, dx);
        }
        if let Some(node) = node_weight {
            let dw = B::gemm_conv2d_weight_grad(x.clone(), weight, grad.clone(), options);
            grads.register::<B>(node.id, dw);
        }
        if let Some(node) = node_bias {
            grads.register::<B>(node.id, B::conv2d_bias_backward(x, bias, grad));
        }
    }
}

impl<B: Backend + GemmConvBackend, C: CheckpointStrategy> GemmConvBackend for Autodiff<B, C> {
    fn gemm_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        let (x, x_node) = x.into_parts();
        let (weight, weight_node) = weight.into_parts();
        let (bias, bias_node) = bias.into_parts();
        match GemmConvBackward.prepare::<C>([x_node, weight_node, bias_node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let out = B::conv2d(x.clone(), weight.clone(), Some(bias.clone()), options.clone());
                prep.finish((x, weight, bias, options), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::conv2d(x, weight, Some(bias), options)),
        }
    }
}

/// `conv`'s forward through [`GemmConvBackend::gemm_conv2d`]; for convolutions with a
/// bias and explicit padding (the main task models' kind), else burn's own forward.
pub fn forward(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let (Some(bias), PaddingConfig2d::Explicit(top, left, bottom, right)) = (&conv.bias, &conv.padding)
    else {
        return conv.forward(x);
    };
    let options = ConvOptions::new_with_padding(
        conv.stride,
        [(*top, *bottom), (*left, *right)],
        conv.dilation,
        conv.groups,
    );
    Tensor::from_dispatch(<Dispatch as GemmConvBackend>::gemm_conv2d(
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

    fn max_difference(a: Tensor<4>, b: Tensor<4>) -> f32 {
        (a - b).abs().max().into_scalar::<f32>()
    }

    /// Same output and same gradients for input, weight and bias as burn's convolution,
    /// for the strides, paddings and channel counts the models use.
    #[test]
    fn matches_burns_convolution_and_its_gradients() {
        let device = burn::tensor::Device::flex().autodiff();
        for (channels_in, channels_out, stride, padding) in
            [(3, 8, 2, (1, 1)), (5, 4, 1, (1, 1)), (4, 6, 2, (0, 2))]
        {
            // Weights through the trainings' seeding lock: other tests of this process
            // draw from the same generator at the same time.
            let conv = crate::training::fresh(&device, 7, |device| {
                Conv2dConfig::new([channels_in, channels_out], [3, 3])
                    .with_stride([stride, stride])
                    .with_padding(PaddingConfig2d::Explicit(padding.0, padding.1, padding.0, padding.1))
                    .init(device)
            });
            let shape = [3, channels_in, 11, 9];
            let values: Vec<f32> =
                (0..shape.iter().product::<usize>()).map(|i| (i as f32 * 0.37).sin()).collect();
            let x = Tensor::<4>::from_data(TensorData::new(values, shape), &device).require_grad();
            let target = |y: Tensor<4>| (y.clone() * y.clone().sin()).sum();

            let ours = forward(&conv, x.clone());
            let theirs = conv.forward(x.clone());
            assert_eq!(ours.dims(), theirs.dims());
            assert!(max_difference(ours.clone(), theirs.clone()) < 1e-5);

            let grads_ours = target(ours).backward();
            let grads_theirs = target(theirs).backward();
            let grad = |g: &burn::tensor::Gradients, t: &Tensor<4>| t.grad(g).expect("gradient");
            assert!(max_difference(grad(&grads_ours, &x), grad(&grads_theirs, &x)) < 1e-4);
            let weight = conv.weight.val();
            let dw = max_difference(grad(&grads_ours, &weight), grad(&grads_theirs, &weight));
            assert!(dw < 1e-3, "weight gradient differs by {dw} (stride {stride}, padding {padding:?})");
            let bias = conv.bias.as_ref().expect("bias").val();
            let db = (bias.grad(&grads_ours).expect("bias gradient")
                - bias.grad(&grads_theirs).expect("bias gradient"))
            .abs()
            .max()
            .into_scalar::<f32>();
            assert!(db < 1e-3, "bias gradient differs by {db}");
        }
    }
}
