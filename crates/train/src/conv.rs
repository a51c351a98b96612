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

use std::borrow::Cow;
use std::cell::Cell;
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
        let (weight, bias) = (weight.to_contiguous(), bias.to_contiguous());
        match (weight.as_slice::<f32>(), bias.as_slice::<f32>()) {
            (Some(ws), Some(bs)) if bs.len() == geometry.channels_out => {
                let output = match geometry.planar_input(&x) {
                    Some(xs) => geometry.forward(xs, ws, bs, Columns::Planar),
                    None => {
                        geometry.forward(&nhwc_values(&x), &geometry.weight_to_taps(ws), bs, Columns::Nhwc)
                    }
                };
                nhwc_tensor(output, geometry.output_shape())
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
        let geometry = Geometry::of(&x, &weight, &options).filter(|g| {
            output.shape().dims::<4>() == g.output_shape() && output_grad.shape() == output.shape()
        });
        let weight = weight.to_contiguous();
        let (Some(geometry), Some(ws)) = (geometry, weight.as_slice::<f32>()) else {
            return burn_conv2d_relu_backward::<Self>(
                x,
                weight,
                bias,
                output,
                output_grad,
                options,
                input_grad,
            );
        };
        let (y, dy) = (nhwc_values(&output), nhwc_values(&output_grad));
        // The weight gradient comes back in the order of the im2col it was computed with.
        let grads = match geometry.planar_input(&x).filter(|_| !input_grad) {
            Some(xs) => geometry.backward(xs, ws, &y, &dy, false, Columns::Planar),
            None => {
                let taps = geometry.weight_to_taps(ws);
                let mut grads =
                    geometry.backward(&nhwc_values(&x), &taps, &y, &dy, input_grad, Columns::Nhwc);
                grads.weight = geometry.weight_from_taps(&grads.weight);
                grads
            }
        };
        (
            grads.input.map(|dx| nhwc_tensor(dx, x.shape().dims::<4>())),
            FlexTensor::from_data(TensorData::new(grads.weight, weight.shape())),
            FlexTensor::from_data(TensorData::new(grads.bias, [geometry.channels_out])),
        )
    }
}

/// The values of an f32 NCHW tensor in NHWC order: borrowed when they already lie that
/// way (this module's outputs and input gradients are NHWC data under an NCHW view),
/// else copied out in one strided copy (flex's tiled one), whatever the layout: an NCHW
/// tensor, or a broadcast view such as the gradient of a mean over the image.
fn nhwc_values(tensor: &FlexTensor) -> Cow<'_, [f32]> {
    if let Some(values) = nhwc_slice(tensor) {
        return Cow::Borrowed(values);
    }
    let nhwc = tensor.permute(&[0, 2, 3, 1]).to_contiguous();
    Cow::Owned(nhwc.into_data().try_into_vec::<f32>().expect("the GEMM path takes f32 tensors only"))
}

/// Each `rows × cols` block of `values` (row-major) transposed to `cols × rows`: weights
/// between OIHW and im2col order, and the planar weight gradient.
fn transposed(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; values.len()];
    for (dst, src) in out.chunks_exact_mut(rows * cols).zip(values.chunks_exact(rows * cols)) {
        for (r, src) in src.chunks_exact(cols).enumerate() {
            dst[r..].iter_mut().step_by(rows).zip(src).for_each(|(d, s)| *d = *s);
        }
    }
    out
}

/// The values of an f32 NCHW tensor whose data lies in NHWC order, borrowed; `None` for
/// any other layout.
fn nhwc_slice(tensor: &FlexTensor) -> Option<&[f32]> {
    let [batch, channels, height, width] = tensor.shape().dims::<4>();
    let len = batch * channels * height * width;
    let layout = tensor.layout();
    let nhwc_strides = [height * width * channels, 1, width * channels, channels];
    let is_nhwc = (0..4).all(|d| layout.shape()[d] <= 1 || layout.strides()[d] == nhwc_strides[d] as isize);
    let storage = tensor.storage::<f32>();
    (is_nhwc && layout.start_offset() + len <= storage.len())
        .then(|| &storage[layout.start_offset()..][..len])
}

/// NHWC `values` as a tensor of NCHW `shape` (a permuted view, no copy).
fn nhwc_tensor(values: Vec<f32>, [batch, channels, height, width]: [usize; 4]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, [batch, height, width, channels])).permute(&[0, 3, 1, 2])
}

/// Output positions per unit of parallel work: whole images are grouped until a task
/// holds about this many. Fixed by the shapes, never by the thread count, so that the
/// weight and bias gradients' partial sums and their order, and so the result to the last
/// bit, are the same on any pool (concurrent trainings must match sequential ones).
const POSITIONS_PER_TASK: usize = 512;

/// Most im2col values built at once (1 MiB), so that large images' columns stay in cache.
const COLUMN_CHUNK: usize = 1 << 18;

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

/// How an operation lays out its input, im2col and weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Columns {
    /// NHWC input; an im2col row per output position, ordered (kernel row, kernel
    /// column, channel); the weight in that order ([`Geometry::weight_to_taps`]).
    Nhwc,
    /// NCHW input as it comes, for inputs with few channels (an RGB batch), whose NHWC
    /// kernel rows would be runs of a few values: the im2col transposed, a row per
    /// (channel, kernel row, kernel column) over the output positions, so its runs are
    /// output rows; the weight in burn's OIHW order. No input gradient.
    Planar,
}

/// The weight, bias and (when asked for) input gradients of one convolution + ReLU; the
/// weight in taps-major order (see [`Geometry::weight_to_taps`]), the input NHWC.
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

    /// Values of one output position's im2col row: `kernel_h · kernel_w · channels_in`,
    /// ordered (kernel row, kernel column, channel) so that a kernel row's taps are one
    /// run of NHWC input where the dilation is 1.
    fn depth(&self) -> usize {
        self.kernel[0] * self.kernel[1] * self.channels_in
    }

    /// Output positions per image: `height_out · width_out`.
    fn positions(&self) -> usize {
        self.output[0] * self.output[1]
    }

    fn image_len(&self) -> usize {
        self.channels_in * self.height * self.width
    }

    fn output_shape(&self) -> [usize; 4] {
        [self.batch, self.channels_out, self.output[0], self.output[1]]
    }

    /// Images per task (see [`POSITIONS_PER_TASK`]).
    fn images_per_task(&self) -> usize {
        (POSITIONS_PER_TASK / self.positions()).max(1)
    }

    /// Output positions whose im2col rows are built at once (see [`COLUMN_CHUNK`]).
    fn chunk_rows(&self) -> usize {
        (COLUMN_CHUNK / self.depth()).max(1)
    }

    /// The tasks' output positions (rows of the batch's NHWC output), in order.
    fn tasks(&self) -> impl Iterator<Item = Range<usize>> + '_ {
        let rows = self.images_per_task() * self.positions();
        (0..self.batch.div_ceil(self.images_per_task()))
            .map(move |t| t * rows..((t + 1) * rows).min(self.batch * self.positions()))
    }

    /// `rows` in chunks of at most [`Geometry::chunk_rows`].
    fn chunks(&self, rows: Range<usize>) -> impl Iterator<Item = Range<usize>> {
        let size = self.chunk_rows();
        rows.clone().step_by(size).map(move |start| start..(start + size).min(rows.end))
    }

    /// OIHW weight → `[channels_out × depth]` in im2col order.
    fn weight_to_taps(&self, weight: &[f32]) -> Vec<f32> {
        transposed(weight, self.channels_in, self.kernel[0] * self.kernel[1])
    }

    /// The inverse of [`Geometry::weight_to_taps`].
    fn weight_from_taps(&self, taps_major: &[f32]) -> Vec<f32> {
        transposed(taps_major, self.kernel[0] * self.kernel[1], self.channels_in)
    }

    /// The output positions `rows` as runs along output rows: (index in `rows` of the
    /// run's first position, image, output row, output columns).
    fn lines(&self, rows: Range<usize>) -> impl Iterator<Item = (usize, usize, usize, Range<usize>)> + '_ {
        let (p, wo) = (self.positions(), self.output[1]);
        let mut next = rows.start;
        std::iter::from_fn(move || {
            (next < rows.end).then(|| {
                let (image, position) = (next / p, next % p);
                let (oy, ox) = (position / wo, position % wo);
                let len = (wo - ox).min(rows.end - next);
                let line = (next - rows.start, image, oy, ox..ox + len);
                next += len;
                line
            })
        })
    }

    /// For each output index along `axis`: the kernel taps that land inside the image and
    /// the input index of the first of them (the transpose of
    /// [`Geometry::outputs_per_tap`]).
    fn axis_taps(&self, axis: usize) -> Vec<(Range<usize>, usize)> {
        let (size, kernel, dilation, padding) =
            ([self.height, self.width][axis], self.kernel[axis], self.dilation[axis], self.padding[axis]);
        (0..self.output[axis])
            .map(|o| {
                // input index = o · stride + tap · dilation − padding, wanted in 0..size
                let origin = o * self.stride[axis];
                let first = padding.saturating_sub(origin).div_ceil(dilation);
                let end = (size + padding).saturating_sub(origin).div_ceil(dilation).min(kernel);
                let first = first.min(end);
                (first..end, (origin + first * dilation).saturating_sub(padding))
            })
            .collect()
    }

    /// `col[rows × depth]` = the im2col of the NHWC batch `x` for output positions `rows`
    /// (zero where a tap lies in the padding).
    fn im2col(&self, x: &[f32], rows: Range<usize>, col: &mut [f32]) {
        let (k, kw, ci, dw) = (self.depth(), self.kernel[1], self.channels_in, self.dilation[1]);
        let (segment, line_len) = (kw * ci, self.width * ci);
        let (row_taps, column_taps) = (self.axis_taps(0), self.axis_taps(1));
        for (n0, image, oy, columns) in self.lines(rows) {
            let image = &x[image * self.image_len()..][..self.image_len()];
            let (inside, y0) = &row_taps[oy];
            for i in 0..self.kernel[0] {
                let offset = i * segment;
                if !inside.contains(&i) {
                    for n in n0..n0 + columns.len() {
                        col[n * k + offset..][..segment].fill(0.0);
                    }
                    continue;
                }
                let line = &image[(y0 + (i - inside.start) * self.dilation[0]) * line_len..][..line_len];
                for (n, ox) in (n0..).zip(columns.clone()) {
                    let dst = &mut col[n * k + offset..][..segment];
                    let (taps, x0) = &column_taps[ox];
                    if taps.len() == kw && dw == 1 {
                        copy(dst, &line[x0 * ci..][..segment]);
                        continue;
                    }
                    dst[..taps.start * ci].fill(0.0);
                    dst[taps.end * ci..].fill(0.0);
                    for (m, j) in taps.clone().enumerate() {
                        copy(&mut dst[j * ci..][..ci], &line[(x0 + m * dw) * ci..][..ci]);
                    }
                }
            }
        }
    }

    /// `dx += col2im(col)` for output positions `rows`, the adjoint of
    /// [`Geometry::im2col`]; `dx` holds the NHWC images from `first_image` on.
    fn col2im(&self, col: &[f32], rows: Range<usize>, dx: &mut [f32], first_image: usize) {
        let (k, kw, ci, dw) = (self.depth(), self.kernel[1], self.channels_in, self.dilation[1]);
        let (segment, line_len) = (kw * ci, self.width * ci);
        let (row_taps, column_taps) = (self.axis_taps(0), self.axis_taps(1));
        for (n0, image, oy, columns) in self.lines(rows) {
            let image = &mut dx[(image - first_image) * self.image_len()..][..self.image_len()];
            let (inside, y0) = &row_taps[oy];
            for i in inside.clone() {
                let offset = i * segment;
                let y = y0 + (i - inside.start) * self.dilation[0];
                let line = &mut image[y * line_len..][..line_len];
                for (n, ox) in (n0..).zip(columns.clone()) {
                    let src = &col[n * k + offset..][..segment];
                    let (taps, x0) = &column_taps[ox];
                    if dw == 1 {
                        let run = taps.len() * ci;
                        add_assign(&mut line[x0 * ci..][..run], &src[taps.start * ci..][..run]);
                    } else {
                        for (m, j) in taps.clone().enumerate() {
                            add_assign(&mut line[(x0 + m * dw) * ci..][..ci], &src[j * ci..][..ci]);
                        }
                    }
                }
            }
        }
    }

    /// Whether `x` goes the [`Columns::Planar`] way: an NCHW tensor (not this module's
    /// NHWC output) whose NHWC kernel rows (`kernel_w · channels_in` values) would be
    /// shorter than its output rows. Its values if so.
    fn planar_input<'a>(&self, x: &'a FlexTensor) -> Option<&'a [f32]> {
        if self.channels_in * self.kernel[1] >= self.output[1] || nhwc_slice(x).is_some() {
            return None;
        }
        x.as_slice::<f32>()
    }

    /// `col[rows × depth]` ([`Columns::Nhwc`]) or `col[depth × rows]` ([`Columns::Planar`]):
    /// the im2col of the batch `x` for output positions `rows`.
    fn im2col_as(&self, columns: Columns, x: &[f32], rows: Range<usize>, col: &mut [f32]) {
        match columns {
            Columns::Nhwc => self.im2col(x, rows, col),
            Columns::Planar => self.im2col_planar(x, rows, col),
        }
    }

    /// `col` as the `rows × depth` matrix it stands for.
    fn columns_matrix<'a>(&self, columns: Columns, col: &'a [f32], rows: usize) -> Matrix<'a> {
        match columns {
            Columns::Nhwc => Matrix::row_major(col, rows, self.depth()),
            Columns::Planar => {
                Matrix { data: col, rows, cols: self.depth(), row_stride: 1, col_stride: rows }
            }
        }
    }

    /// For each tap along `axis`: the output indices at which it lands inside the image
    /// and the input index at the first of them (the transpose of [`Geometry::axis_taps`]).
    fn outputs_per_tap(&self, axis: usize) -> Vec<(Range<usize>, usize)> {
        let (size, stride, padding) =
            ([self.height, self.width][axis], self.stride[axis], self.padding[axis]);
        (0..self.kernel[axis])
            .map(|tap| {
                let offset = tap * self.dilation[axis];
                // input index = output · stride + offset − padding, wanted in 0..size
                let first = padding.saturating_sub(offset).div_ceil(stride);
                let end = (size + padding).saturating_sub(offset).div_ceil(stride).min(self.output[axis]);
                let first = first.min(end);
                (first..end, (first * stride + offset).saturating_sub(padding))
            })
            .collect()
    }

    /// [`Columns::Planar`]'s im2col of the NCHW batch `x`: `col[depth × rows]`, zero where
    /// a tap lies in the padding.
    fn im2col_planar(&self, x: &[f32], rows: Range<usize>, col: &mut [f32]) {
        let (n, plane, [kh, kw]) = (rows.len(), self.height * self.width, self.kernel);
        let (by_row_tap, by_column_tap) = (self.outputs_per_tap(0), self.outputs_per_tap(1));
        let lines: Vec<_> = self.lines(rows).collect();
        for c in 0..self.channels_in {
            for (i, (ys, y0)) in by_row_tap.iter().enumerate() {
                for (j, (xs, x0)) in by_column_tap.iter().enumerate() {
                    let row = &mut col[((c * kh + i) * kw + j) * n..][..n];
                    for (n0, image, oy, oxs) in lines.iter().cloned() {
                        let dst = &mut row[n0..][..oxs.len()];
                        if !ys.contains(&oy) {
                            dst.fill(0.0);
                            continue;
                        }
                        let y = y0 + (oy - ys.start) * self.stride[0];
                        let line =
                            &x[(image * self.channels_in + c) * plane + y * self.width..][..self.width];
                        let start = oxs.start.clamp(xs.start, xs.end);
                        let end = oxs.end.clamp(start, xs.end);
                        dst[..start - oxs.start].fill(0.0);
                        dst[end - oxs.start..].fill(0.0);
                        let src = &line[x0 + (start - xs.start) * self.stride[1]..];
                        gather(&mut dst[start - oxs.start..end - oxs.start], src, self.stride[1]);
                    }
                }
            }
        }
    }

    /// `relu(col · Wᵀ + bias)` for every output position of the batch `x`, with `x`,
    /// `col` and `weight` `[channels_out × depth]` laid out as `columns` says: NHWC output.
    fn forward(&self, x: &[f32], weight: &[f32], bias: &[f32], columns: Columns) -> Vec<f32> {
        let (k, co) = (self.depth(), self.channels_out);
        let mut output = vec![0f32; self.batch * self.positions() * co];
        let tasks: Vec<_> = self.tasks().collect();
        let per_task = self.images_per_task() * self.positions() * co;
        output.par_chunks_mut(per_task).zip(tasks).for_each(|(y, task)| {
            with_scratch(self.chunk_rows().min(task.len()) * k, 0, |col, _| {
                for rows in self.chunks(task.clone()) {
                    let col = &mut col[..rows.len() * k];
                    let y = &mut y[(rows.start - task.start) * co..][..rows.len() * co];
                    self.im2col_as(columns, x, rows.clone(), col);
                    // Y[rows × co] = col[rows × k] · Wᵀ[k × co]
                    let w_t = Matrix { data: weight, rows: k, cols: co, row_stride: 1, col_stride: k };
                    gemm_into(y, self.columns_matrix(columns, col, rows.len()), w_t, false);
                    for values in y.chunks_exact_mut(co) {
                        values.iter_mut().zip(bias).for_each(|(v, b)| *v = (*v + b).max(0.0));
                    }
                }
            })
        });
        output
    }

    /// The gradients for the NHWC output `y` and its gradient `dy`, with `x`, `weight` and
    /// the weight gradient laid out as `columns` says (no input gradient for
    /// [`Columns::Planar`]); each task sums its own weight and bias gradients, added in
    /// task order.
    fn backward(
        &self,
        x: &[f32],
        weight: &[f32],
        y: &[f32],
        dy: &[f32],
        input_grad: bool,
        columns: Columns,
    ) -> Grads {
        let input_grad = input_grad && columns == Columns::Nhwc;
        let (k, co) = (self.depth(), self.channels_out);
        let mut dx = if input_grad { vec![0f32; self.batch * self.image_len()] } else { Vec::new() };
        let tasks: Vec<_> = self.tasks().collect();
        let slots: Vec<Option<&mut [f32]>> = if input_grad {
            dx.chunks_mut(self.images_per_task() * self.image_len()).map(Some).collect()
        } else {
            tasks.iter().map(|_| None).collect()
        };
        let partials: Vec<(Vec<f32>, Vec<f32>)> = slots
            .into_par_iter()
            .zip(tasks)
            .map(|(mut dx, task)| {
                let chunk = self.chunk_rows().min(task.len());
                with_scratch(chunk * k, chunk * co, |col, g| {
                    let (mut dw, mut db) = (vec![0f32; co * k], vec![0f32; co]);
                    let first_image = task.start / self.positions();
                    for rows in self.chunks(task.clone()) {
                        let (col, g) = (&mut col[..rows.len() * k], &mut g[..rows.len() * co]);
                        let span = rows.start * co..rows.end * co;
                        g.iter_mut()
                            .zip(y[span.clone()].iter().zip(&dy[span]))
                            .for_each(|(g, (y, dy))| *g = relu_gate(*y, *dy));
                        for values in g.chunks_exact(co) {
                            add_assign(&mut db, values);
                        }
                        self.im2col_as(columns, x, rows.clone(), col);
                        let r = rows.len();
                        match columns {
                            // dW[co × k] += Gᵀ[co × rows] · col[rows × k]
                            Columns::Nhwc => {
                                let g_t =
                                    Matrix { data: g, rows: co, cols: r, row_stride: 1, col_stride: co };
                                gemm_into(&mut dw, g_t, Matrix::row_major(col, r, k), true);
                            }
                            // dWᵀ[k × co] += col[k × rows] · G[rows × co]: both operands as
                            // stored, which gemm reads without packing the large one
                            Columns::Planar => {
                                gemm_into(
                                    &mut dw,
                                    Matrix::row_major(col, k, r),
                                    Matrix::row_major(g, r, co),
                                    true,
                                );
                            }
                        }
                        if let Some(dx) = dx.as_deref_mut() {
                            // dcol[rows × k] = G[rows × co] · W[co × k], into col (no longer needed)
                            let g = Matrix::row_major(g, r, co);
                            gemm_into(col, g, Matrix::row_major(weight, co, k), false);
                            self.col2im(col, rows, dx, first_image);
                        }
                    }
                    (dw, db)
                })
            })
            .collect();
        let mut partials = partials.into_iter();
        let (mut weight_grad, mut bias_grad) =
            partials.next().unwrap_or_else(|| (vec![0.0; co * k], vec![0.0; co]));
        for (dw, db) in partials {
            add_assign(&mut weight_grad, &dw);
            add_assign(&mut bias_grad, &db);
        }
        if columns == Columns::Planar {
            weight_grad = transposed(&weight_grad, k, co);
        }
        Grads { input: input_grad.then_some(dx), weight: weight_grad, bias: bias_grad }
    }
}

thread_local! {
    /// Each thread's im2col and masked-gradient buffers, kept between operations so that
    /// a training step does not allocate and zero them afresh for every layer and task.
    static SCRATCH: Cell<[Vec<f32>; 2]> = const { Cell::new([Vec::new(), Vec::new()]) };
}

/// Runs `work` with two scratch buffers of `first` and `second` values (contents
/// unspecified: `work` overwrites what it reads). The buffers are taken out of the
/// thread-local while `work` runs, so a nested call gets fresh ones.
fn with_scratch<R>(first: usize, second: usize, work: impl FnOnce(&mut [f32], &mut [f32]) -> R) -> R {
    let [mut a, mut b] = SCRATCH.take();
    for (buffer, len) in [(&mut a, first), (&mut b, second)] {
        if buffer.len() < len {
            buffer.resize(len, 0.0);
        }
    }
    let result = work(&mut a[..first], &mut b[..second]);
    SCRATCH.set([a, b]);
    result
}

/// `dy` where the ReLU's output `y` is positive, else 0; a bit mask rather than a branch,
/// so that the loop vectorises.
#[inline(always)]
fn relu_gate(y: f32, dy: f32) -> f32 {
    f32::from_bits(dy.to_bits() & u32::from(y > 0.0).wrapping_neg())
}

/// `dst = src`; short runs (a 3-channel layer's kernel rows) without a call to `memcpy`.
#[inline(always)]
fn copy(dst: &mut [f32], src: &[f32]) {
    if dst.len() <= 16 {
        dst.iter_mut().zip(src).for_each(|(d, s)| *d = *s);
    } else {
        dst.copy_from_slice(src);
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

/// `dst[i] += src[i]`.
fn add_assign(dst: &mut [f32], src: &[f32]) {
    dst.iter_mut().zip(src).for_each(|(d, s)| *d += *s);
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

/// `dst[m × n] (+)= lhs[m × k] · rhs[k × n]`, `dst` row-major; `accumulate: false`
/// overwrites `dst`. Single-threaded: the callers parallelise over tasks.
// `gemm` is an unsafe API (raw pointers and strides); the asserts pin every element to
// its slice, and the results are tested against burn's convolution.
#[allow(unsafe_code)]
fn gemm_into(dst: &mut [f32], lhs: Matrix, rhs: Matrix, accumulate: bool) {
    let (m, n, k) = (lhs.rows, rhs.cols, lhs.cols);
    assert!(rhs.rows == k && dst.len() >= m * n, "gemm operand shapes do not fit");
    assert!(lhs.in_bounds() && rhs.in_bounds(), "gemm operand outside its slice");
    // SAFETY: dst is m × n row-major, (i, j) at i · n + j < m · n, within its length
    // (asserted); lhs and rhs are read only at row · row_stride + col · col_stride, within
    // their lengths (asserted).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
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
