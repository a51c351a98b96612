//! 2-D convolution followed by ReLU as one operation, through burn's backend-extension
//! API, with forward and backward written as GEMMs over an im2col on the CPU backend.
//!
//! Every 3x3 convolution of the main task models is followed by a ReLU. On burn's `flex`
//! backend the separate operations cost a layout change to NHWC and back, a bias pass, a
//! ReLU pass each way, and burn's generic weight gradient (a convolution with the output
//! gradient as a dilated kernel: GEMMs with a huge inner and tiny outer dimensions); see
//! BENCHMARKS.md. Here, per image `b` with `col_b[Ci·kh·kw, Ho·Wo]` its im2col:
//! - forward: `Y_b = relu(W · col_b + bias)`, bias and ReLU applied in the GEMM's output;
//! - backward, with `G_b = dY_b ⊙ [Y_b > 0]`: `dW = Σ_b G_b · col_bᵀ`, `dbias = Σ_b G_b · 1`,
//!   `dX_b = col2im(Wᵀ · G_b)`,
//!
//! with the `gemm` crate flex itself uses, images in parallel on rayon. GPU backends keep
//! burn's kernels (the trait's default bodies).

use std::ops::Range;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Cube, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

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
fn burn_conv2d_relu<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    bias: FloatTensor<B>,
    options: ConvOptions<2>,
) -> FloatTensor<B> {
    B::relu(B::conv2d(x, weight, Some(bias), options))
}

fn burn_conv2d_relu_backward<B: Backend>(
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

impl ConvReluBackend for Flex {
    fn conv2d_relu(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        let Some(geometry) = Geometry::of(&x, &weight, &options) else {
            return burn_conv2d_relu::<Self>(x, weight, bias, options);
        };
        let (x, weight, bias) = (x.to_contiguous(), weight.to_contiguous(), bias.to_contiguous());
        match (x.as_slice::<f32>(), weight.as_slice::<f32>(), bias.as_slice::<f32>()) {
            (Some(xs), Some(ws), Some(bs)) if bs.len() == geometry.channels_out => {
                let output = geometry.forward(xs, ws, bs);
                FlexTensor::from_data(TensorData::new(output, geometry.output_shape()))
            }
            _ => burn_conv2d_relu::<Self>(x, weight, bias, options),
        }
    }

    fn conv2d_relu_backward(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        output: FlexTensor,
        output_grad: FlexTensor,
        options: ConvOptions<2>,
        input_grad: bool,
    ) -> ConvReluGrads<Self> {
        let fallback = |x, weight, bias, output, output_grad, options| {
            burn_conv2d_relu_backward::<Self>(x, weight, bias, output, output_grad, options, input_grad)
        };
        let Some(geometry) = Geometry::of(&x, &weight, &options) else {
            return fallback(x, weight, bias, output, output_grad, options);
        };
        let [x, weight, output, output_grad] = [x, weight, output, output_grad].map(|t| t.to_contiguous());
        let slices = (
            x.as_slice::<f32>(),
            weight.as_slice::<f32>(),
            output.as_slice::<f32>(),
            output_grad.as_slice::<f32>(),
        );
        match slices {
            (Some(xs), Some(ws), Some(ys), Some(gs))
                if ys.len() == gs.len() && ys.len() == geometry.outputs() =>
            {
                let grads = geometry.backward(xs, ws, ys, gs, input_grad);
                (
                    grads.input.map(|dx| FlexTensor::from_data(TensorData::new(dx, x.shape()))),
                    FlexTensor::from_data(TensorData::new(grads.weight, weight.shape())),
                    FlexTensor::from_data(TensorData::new(grads.bias, [geometry.channels_out])),
                )
            }
            _ => fallback(x, weight, bias, output, output_grad, options),
        }
    }
}

/// Images per unit of parallel work in the backward pass. Fixed, not derived from the
/// thread count, so that the partial sums of the weight and bias gradients and their
/// order, and so the result to the last bit, are the same on any pool (concurrent
/// trainings must match sequential ones).
const IMAGES_PER_TASK: usize = 4;

/// One convolution's shapes (NCHW input, OIHW weight) and options, for the GEMM path.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    batch: usize,
    channels_in: usize,
    height: usize,
    width: usize,
    channels_out: usize,
    kernel: [usize; 2],
    output: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    padding: [usize; 2],
}

/// The weight, bias and (when asked for) input gradients of one convolution + ReLU.
struct Grads {
    input: Option<Vec<f32>>,
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl Geometry {
    /// `None` where the GEMM path does not apply: grouped convolutions, other float types
    /// than f32, shapes that do not fit together.
    fn of(x: &FlexTensor, weight: &FlexTensor, options: &ConvOptions<2>) -> Option<Self> {
        let (xs, ws) = (x.shape(), weight.shape());
        if options.groups != 1 || x.dtype() != DType::F32 || weight.dtype() != DType::F32 {
            return None;
        }
        if xs.num_dims() != 4 || ws.num_dims() != 4 || xs[1] != ws[1] {
            return None;
        }
        let (begin, end) = (options.padding_begin(), options.padding_end());
        let output = |axis: usize, size: usize| {
            let span = options.dilation[axis] * ws[2 + axis].checked_sub(1)? + 1;
            (size + begin[axis] + end[axis]).checked_sub(span).map(|room| room / options.stride[axis] + 1)
        };
        let geometry = Geometry {
            batch: xs[0],
            channels_in: xs[1],
            height: xs[2],
            width: xs[3],
            channels_out: ws[0],
            kernel: [ws[2], ws[3]],
            output: [output(0, xs[2])?, output(1, xs[3])?],
            stride: options.stride,
            dilation: options.dilation,
            padding: begin,
        };
        let nonzero = [geometry.batch, geometry.channels_in, geometry.channels_out, geometry.positions()];
        (nonzero.iter().all(|&n| n > 0) && geometry.stride.iter().all(|&s| s > 0)).then_some(geometry)
    }

    /// Rows of an image's im2col matrix: `channels_in · kernel_h · kernel_w`.
    fn rows(&self) -> usize {
        self.channels_in * self.kernel[0] * self.kernel[1]
    }

    /// Output positions per image (the im2col matrix's columns): `height_out · width_out`.
    fn positions(&self) -> usize {
        self.output[0] * self.output[1]
    }

    fn image_len(&self) -> usize {
        self.channels_in * self.height * self.width
    }

    fn output_len(&self) -> usize {
        self.channels_out * self.positions()
    }

    fn outputs(&self) -> usize {
        self.batch * self.output_len()
    }

    fn output_shape(&self) -> [usize; 4] {
        [self.batch, self.channels_out, self.output[0], self.output[1]]
    }

    /// The output positions along `axis` whose kernel tap `tap` lands inside the image,
    /// and the input index of the first of them.
    fn taps(&self, axis: usize, tap: usize) -> (Range<usize>, usize) {
        let size = [self.height, self.width][axis];
        let (stride, offset) = (self.stride[axis], tap * self.dilation[axis]);
        // input index = position · stride + offset − padding, wanted in 0..size
        let first = self.padding[axis].saturating_sub(offset).div_ceil(stride);
        let end = (size + self.padding[axis]).saturating_sub(offset).div_ceil(stride).min(self.output[axis]);
        let first = first.min(end);
        (first..end, (first * stride + offset).saturating_sub(self.padding[axis]))
    }

    /// Calls `visit(row of col, input plane, output rows, output columns, first input
    /// index)` for each im2col row, in order.
    fn for_each_tap(
        &self,
        mut visit: impl FnMut(usize, usize, (Range<usize>, usize), (Range<usize>, usize)),
    ) {
        for c in 0..self.channels_in {
            for i in 0..self.kernel[0] {
                let rows = self.taps(0, i);
                for j in 0..self.kernel[1] {
                    visit((c * self.kernel[0] + i) * self.kernel[1] + j, c, rows.clone(), self.taps(1, j));
                }
            }
        }
    }

    /// `col[rows × positions]` = the im2col of one image (zero where a tap overhangs).
    fn im2col(&self, image: &[f32], col: &mut [f32]) {
        let (p, wo, plane) = (self.positions(), self.output[1], self.height * self.width);
        let [stride_h, stride_w] = self.stride;
        self.for_each_tap(|row, c, (ys, y0), (xs, x0)| {
            let row = &mut col[row * p..][..p];
            let plane = &image[c * plane..][..plane];
            row[..ys.start * wo].fill(0.0);
            row[ys.end * wo..].fill(0.0);
            for (n, oy) in ys.enumerate() {
                let dst = &mut row[oy * wo..][..wo];
                dst[..xs.start].fill(0.0);
                dst[xs.end..].fill(0.0);
                gather(&mut dst[xs.clone()], &plane[(y0 + n * stride_h) * self.width + x0..], stride_w);
            }
        });
    }

    /// `image += col2im(col)`: the adjoint of [`Geometry::im2col`].
    fn col2im(&self, col: &[f32], image: &mut [f32]) {
        let (p, wo, plane) = (self.positions(), self.output[1], self.height * self.width);
        let [stride_h, stride_w] = self.stride;
        self.for_each_tap(|row, c, (ys, y0), (xs, x0)| {
            let row = &col[row * p..][..p];
            let plane = &mut image[c * plane..][..plane];
            for (n, oy) in ys.enumerate() {
                scatter_add(
                    &mut plane[(y0 + n * stride_h) * self.width + x0..],
                    &row[oy * wo..][xs.clone()],
                    stride_w,
                );
            }
        });
    }

    /// `relu(W · col_b + bias)` for every image, images in parallel.
    fn forward(&self, x: &[f32], weight: &[f32], bias: &[f32]) -> Vec<f32> {
        let (k, p) = (self.rows(), self.positions());
        let mut output = vec![0f32; self.outputs()];
        output.par_chunks_mut(self.output_len()).zip(x.par_chunks(self.image_len())).for_each_init(
            || vec![0f32; k * p],
            |col, (y, image)| {
                self.im2col(image, col);
                for (row, b) in y.chunks_mut(p).zip(bias) {
                    row.fill(*b);
                }
                // Y_b[co × p] = (col_bᵀ[p × k] · Wᵀ[k × co])ᵀ: the big operand col_bᵀ is then
                // column-major, which gemm reads without packing it.
                let col_t = Matrix { data: col, rows: p, cols: k, row_stride: 1, col_stride: p };
                let w_t =
                    Matrix { data: weight, rows: k, cols: self.channels_out, row_stride: 1, col_stride: k };
                gemm_into(y, Store::Columns, col_t, w_t, true);
                y.iter_mut().for_each(|v| *v = v.max(0.0));
            },
        );
        output
    }

    /// The gradients for output `y` and its gradient `dy`; tasks of [`IMAGES_PER_TASK`]
    /// images each sum their own weight and bias gradients, added in task order.
    fn backward(&self, x: &[f32], weight: &[f32], y: &[f32], dy: &[f32], input_grad: bool) -> Grads {
        let (k, p, co) = (self.rows(), self.positions(), self.channels_out);
        let mut dx = if input_grad { vec![0f32; self.batch * self.image_len()] } else { Vec::new() };
        let tasks = self.batch.div_ceil(IMAGES_PER_TASK);
        let slots: Vec<Option<&mut [f32]>> = if input_grad {
            dx.chunks_mut(IMAGES_PER_TASK * self.image_len()).map(Some).collect()
        } else {
            (0..tasks).map(|_| None).collect()
        };
        let partials: Vec<(Vec<f32>, Vec<f32>)> = slots
            .into_par_iter()
            .enumerate()
            .map_init(
                || (vec![0f32; k * p], vec![0f32; co * p]),
                |(col, g), (task, mut dx)| {
                    let (mut dw, mut db) = (vec![0f32; co * k], vec![0f32; co]);
                    let images = task * IMAGES_PER_TASK..((task + 1) * IMAGES_PER_TASK).min(self.batch);
                    for (n, b) in images.enumerate() {
                        let (y, dy) = (&y[b * co * p..][..co * p], &dy[b * co * p..][..co * p]);
                        g.iter_mut()
                            .zip(y.iter().zip(dy))
                            .for_each(|(g, (y, dy))| *g = if *y > 0.0 { *dy } else { 0.0 });
                        for (sum, row) in db.iter_mut().zip(g.chunks(p)) {
                            *sum += sum_f32(row);
                        }
                        self.im2col(&x[b * self.image_len()..][..self.image_len()], col);
                        // dW[co × k] (+)= G_b[co × p] · col_bᵀ[p × k]
                        let col_t = Matrix { data: col, rows: p, cols: k, row_stride: 1, col_stride: p };
                        gemm_into(&mut dw, Store::Rows, Matrix::row_major(g, co, p), col_t, n > 0);
                        if let Some(dx) = dx.as_deref_mut() {
                            // dcol[k × p] = (G_bᵀ[p × co] · W[co × k])ᵀ, into col (no longer
                            // needed); G_bᵀ column-major, as in the forward.
                            let g_t = Matrix { data: g, rows: p, cols: co, row_stride: 1, col_stride: p };
                            gemm_into(col, Store::Columns, g_t, Matrix::row_major(weight, co, k), false);
                            self.col2im(col, &mut dx[n * self.image_len()..][..self.image_len()]);
                        }
                    }
                    (dw, db)
                },
            )
            .collect();
        let mut partials = partials.into_iter();
        let (mut weight_grad, mut bias_grad) =
            partials.next().unwrap_or_else(|| (vec![0.0; co * k], vec![0.0; co]));
        for (dw, db) in partials {
            weight_grad.iter_mut().zip(dw).for_each(|(a, b)| *a += b);
            bias_grad.iter_mut().zip(db).for_each(|(a, b)| *a += b);
        }
        Grads { input: input_grad.then_some(dx), weight: weight_grad, bias: bias_grad }
    }
}

/// `dst[i] = src[i · stride]`. Strides 1 and 2 (the models') in forms the compiler
/// vectorises; `src` must hold `(dst.len() − 1) · stride + 1` values.
fn gather(dst: &mut [f32], src: &[f32], stride: usize) {
    let n = dst.len();
    match stride {
        1 => dst.copy_from_slice(&src[..n]),
        2 if src.len() >= 2 * n => dst.iter_mut().zip(src.chunks_exact(2)).for_each(|(d, pair)| *d = pair[0]),
        _ => dst.iter_mut().zip(src.iter().step_by(stride)).for_each(|(d, s)| *d = *s),
    }
}

/// `dst[i · stride] += src[i]`: the adjoint of [`gather`].
fn scatter_add(dst: &mut [f32], src: &[f32], stride: usize) {
    let n = src.len();
    match stride {
        1 => dst[..n].iter_mut().zip(src).for_each(|(d, s)| *d += *s),
        2 if dst.len() >= 2 * n => dst.chunks_exact_mut(2).zip(src).for_each(|(pair, s)| pair[0] += *s),
        _ => dst.iter_mut().step_by(stride).zip(src).for_each(|(d, s)| *d += *s),
    }
}

/// The sum of `values` in eight interleaved partial sums (vectorised; a fixed order, so
/// the same on every run).
fn sum_f32(values: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let chunks = values.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for chunk in chunks {
        lanes.iter_mut().zip(chunk).for_each(|(l, v)| *l += *v);
    }
    lanes.iter().sum::<f32>() + tail
}

/// A strided view of an f32 matrix.
#[derive(Clone, Copy)]
struct Matrix<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Matrix<'a> {
    fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Matrix { data, rows, cols, row_stride: cols, col_stride: 1 }
    }

    /// Whether every element lies inside `data`.
    fn in_bounds(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride < self.data.len()
    }
}

/// How [`gemm_into`] stores its `m × n` product in `dst`.
#[derive(Clone, Copy)]
enum Store {
    /// Row-major: element (i, j) at `i · n + j`.
    Rows,
    /// Column-major, i.e. the transposed product row-major: (i, j) at `i + j · m`.
    Columns,
}

/// `dst (+)= lhs[m × k] · rhs[k × n]`, stored as `store` says; `accumulate: false`
/// overwrites `dst`. Single-threaded: the callers parallelise over images.
// `gemm` is an unsafe API (raw pointers and strides); the asserts pin every element to
// its slice, and the results are tested against burn's convolution.
#[allow(unsafe_code)]
fn gemm_into(dst: &mut [f32], store: Store, lhs: Matrix, rhs: Matrix, accumulate: bool) {
    let (m, n, k) = (lhs.rows, rhs.cols, lhs.cols);
    assert!(rhs.rows == k && dst.len() >= m * n, "gemm operand shapes do not fit");
    assert!(lhs.in_bounds() && rhs.in_bounds(), "gemm operand outside its slice");
    let (dst_col_stride, dst_row_stride) = match store {
        Store::Rows => (1, n),
        Store::Columns => (m, 1),
    };
    // SAFETY: dst is m × n, (i, j) at i · dst_row_stride + j · dst_col_stride < m · n, within
    // its length (asserted); lhs and rhs are read only at row · row_stride + col · col_stride,
    // within their lengths (asserted).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_col_stride as isize,
            dst_row_stride as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
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
struct ConvReluBackward;

impl<B: Backend + ConvReluBackend> Backward<B, 3> for ConvReluBackward {
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
        ];
        for (channels_in, channels_out, kernel, stride, dilation, (top, left, bottom, right), batch, h, w) in
            cases
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
            let x = Tensor::<4>::from_data(TensorData::new(values, shape), &device).require_grad();
            let target = |y: Tensor<4>| (y.clone() * y.clone().sin()).sum();
            let case = format!("{channels_in}→{channels_out}, k {kernel}, s {stride}, d {dilation}");

            let ours = forward_relu(&conv, x.clone());
            let theirs = relu(conv.forward(x.clone()));
            assert_eq!(ours.dims(), theirs.dims(), "{case}");
            let dy = max_difference(ours.clone(), theirs.clone());
            assert!(dy < 1e-5, "output differs by {dy} ({case})");

            let grads_ours = target(ours).backward();
            let grads_theirs = target(theirs).backward();
            let grad = |g: &burn::tensor::Gradients, t: &Tensor<4>| t.grad(g).expect("gradient");
            let dx = max_difference(grad(&grads_ours, &x), grad(&grads_theirs, &x));
            assert!(dx < 1e-4, "input gradient differs by {dx} ({case})");
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
}
