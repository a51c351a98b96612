//! One convolution's shapes for the GEMM path, and the layouts it works in: how output
//! positions are split into tasks and chunks, the weight between OIHW and im2col order,
//! and im2col / col2im over NHWC or planar input.

use std::ops::Range;

use burn::backend::TensorMetadata;
use burn::backend::flex::FlexTensor;
use burn::tensor::DType;
use burn::tensor::ops::ConvOptions;

use super::flex::nhwc_slice;
use super::passes::Matrix;

/// Output positions per unit of parallel work: whole images are grouped until a task
/// holds about this many. Fixed by the shapes, never by the thread count, so that the
/// weight and bias gradients' partial sums and their order, and so the result to the last
/// bit, are the same on any pool (concurrent trainings must match sequential ones).
pub(super) const POSITIONS_PER_TASK: usize = 512;

/// Most im2col values built at once (1 MiB), so that large images' columns stay in cache.
pub(super) const COLUMN_CHUNK: usize = 1 << 18;

/// One convolution's shapes (NCHW input, OIHW weight) and options, for the GEMM path.
#[derive(Clone, Copy, Debug)]
pub(super) struct Geometry {
    pub(super) batch: usize,
    pub(super) channels_in: usize,
    pub(super) height: usize,
    pub(super) width: usize,
    pub(super) channels_out: usize,
    pub(super) kernel: [usize; 2],
    pub(super) output: [usize; 2],
    pub(super) stride: [usize; 2],
    pub(super) dilation: [usize; 2],
    pub(super) padding: [usize; 2],
}

/// How an operation lays out its input, im2col and weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Columns {
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
pub(super) struct Grads {
    pub(super) input: Option<Vec<f32>>,
    pub(super) weight: Vec<f32>,
    pub(super) bias: Vec<f32>,
}

impl Geometry {
    /// `None` where the GEMM path does not apply: grouped convolutions, other float types
    /// than f32, shapes that do not fit together.
    pub(super) fn of(x: &FlexTensor, weight: &FlexTensor, options: &ConvOptions<2>) -> Option<Self> {
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
    pub(super) fn depth(&self) -> usize {
        self.kernel[0] * self.kernel[1] * self.channels_in
    }

    /// Output positions per image: `height_out · width_out`.
    pub(super) fn positions(&self) -> usize {
        self.output[0] * self.output[1]
    }

    pub(super) fn image_len(&self) -> usize {
        self.channels_in * self.height * self.width
    }

    pub(super) fn output_shape(&self) -> [usize; 4] {
        [self.batch, self.channels_out, self.output[0], self.output[1]]
    }

    /// Images per task (see [`POSITIONS_PER_TASK`]).
    pub(super) fn images_per_task(&self) -> usize {
        (POSITIONS_PER_TASK / self.positions()).max(1)
    }

    /// Output positions whose im2col rows are built at once (see [`COLUMN_CHUNK`]).
    pub(super) fn chunk_rows(&self) -> usize {
        (COLUMN_CHUNK / self.depth()).max(1)
    }

    /// The tasks' output positions (rows of the batch's NHWC output), in order.
    pub(super) fn tasks(&self) -> impl Iterator<Item = Range<usize>> + '_ {
        let rows = self.images_per_task() * self.positions();
        (0..self.batch.div_ceil(self.images_per_task()))
            .map(move |t| t * rows..((t + 1) * rows).min(self.batch * self.positions()))
    }

    /// `rows` in chunks of at most [`Geometry::chunk_rows`].
    pub(super) fn chunks(&self, rows: Range<usize>) -> impl Iterator<Item = Range<usize>> {
        let size = self.chunk_rows();
        rows.clone().step_by(size).map(move |start| start..(start + size).min(rows.end))
    }

    /// OIHW weight → `[channels_out × depth]` in im2col order.
    pub(super) fn weight_to_taps(&self, weight: &[f32]) -> Vec<f32> {
        transposed(weight, self.channels_in, self.kernel[0] * self.kernel[1])
    }

    /// The inverse of [`Geometry::weight_to_taps`].
    pub(super) fn weight_from_taps(&self, taps_major: &[f32]) -> Vec<f32> {
        transposed(taps_major, self.kernel[0] * self.kernel[1], self.channels_in)
    }

    /// The output positions `rows` as runs along output rows: (index in `rows` of the
    /// run's first position, image, output row, output columns).
    pub(super) fn lines(
        &self,
        rows: Range<usize>,
    ) -> impl Iterator<Item = (usize, usize, usize, Range<usize>)> + '_ {
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
    pub(super) fn axis_taps(&self, axis: usize) -> Vec<(Range<usize>, usize)> {
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
    pub(super) fn im2col(&self, x: &[f32], rows: Range<usize>, col: &mut [f32]) {
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
    pub(super) fn col2im(&self, col: &[f32], rows: Range<usize>, dx: &mut [f32], first_image: usize) {
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
    pub(super) fn planar_input<'a>(&self, x: &'a FlexTensor) -> Option<&'a [f32]> {
        if self.channels_in * self.kernel[1] >= self.output[1] || nhwc_slice(x).is_some() {
            return None;
        }
        x.as_slice::<f32>()
    }

    /// `col[rows × depth]` ([`Columns::Nhwc`]) or `col[depth × rows]` ([`Columns::Planar`]):
    /// the im2col of the batch `x` for output positions `rows`.
    pub(super) fn im2col_as(&self, columns: Columns, x: &[f32], rows: Range<usize>, col: &mut [f32]) {
        match columns {
            Columns::Nhwc => self.im2col(x, rows, col),
            Columns::Planar => self.im2col_planar(x, rows, col),
        }
    }

    /// `col` as the `rows × depth` matrix it stands for.
    pub(super) fn columns_matrix<'a>(&self, columns: Columns, col: &'a [f32], rows: usize) -> Matrix<'a> {
        match columns {
            Columns::Nhwc => Matrix::row_major(col, rows, self.depth()),
            Columns::Planar => {
                Matrix { data: col, rows, cols: self.depth(), row_stride: 1, col_stride: rows }
            }
        }
    }

    /// For each tap along `axis`: the output indices at which it lands inside the image
    /// and the input index at the first of them (the transpose of [`Geometry::axis_taps`]).
    pub(super) fn outputs_per_tap(&self, axis: usize) -> Vec<(Range<usize>, usize)> {
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
    pub(super) fn im2col_planar(&self, x: &[f32], rows: Range<usize>, col: &mut [f32]) {
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
}

/// Each `rows × cols` block of `values` (row-major) transposed to `cols × rows`: weights
/// between OIHW and im2col order, and the planar weight gradient.
pub(super) fn transposed(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; values.len()];
    for (dst, src) in out.chunks_exact_mut(rows * cols).zip(values.chunks_exact(rows * cols)) {
        for (r, src) in src.chunks_exact(cols).enumerate() {
            dst[r..].iter_mut().step_by(rows).zip(src).for_each(|(d, s)| *d = *s);
        }
    }
    out
}

/// `dst = src`; short runs (a 3-channel layer's kernel rows) without a call to `memcpy`.
#[inline(always)]
pub(super) fn copy(dst: &mut [f32], src: &[f32]) {
    if dst.len() <= 16 {
        dst.iter_mut().zip(src).for_each(|(d, s)| *d = *s);
    } else {
        dst.copy_from_slice(src);
    }
}

/// `dst[i] = src[i · stride]`. Strides 1 and 2 (the models') in forms the compiler
/// vectorises; `src` must hold `(dst.len() − 1) · stride + 1` values.
pub(super) fn gather(dst: &mut [f32], src: &[f32], stride: usize) {
    let n = dst.len();
    match stride {
        1 => dst.copy_from_slice(&src[..n]),
        2 if src.len() >= 2 * n => dst.iter_mut().zip(src.chunks_exact(2)).for_each(|(d, pair)| *d = pair[0]),
        _ => dst.iter_mut().zip(src.iter().step_by(stride)).for_each(|(d, s)| *d = *s),
    }
}

/// `dst[i] += src[i]`.
pub(super) fn add_assign(dst: &mut [f32], src: &[f32]) {
    dst.iter_mut().zip(src).for_each(|(d, s)| *d += *s);
}
