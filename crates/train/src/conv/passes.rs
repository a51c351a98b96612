//! The GEMM path's forward and backward passes for one [`Geometry`], blocks of whole
//! images in parallel on rayon, and the single-threaded GEMM they are made of.

use std::cell::Cell;

use rayon::prelude::*;

use super::geometry::{Columns, Geometry, Grads, add_assign, transposed};

impl Geometry {
    /// `relu(col · Wᵀ + bias)` for every output position of the batch `x`, with `x`,
    /// `col` and `weight` `[channels_out × depth]` laid out as `columns` says: NHWC output.
    pub(super) fn forward(&self, x: &[f32], weight: &[f32], bias: &[f32], columns: Columns) -> Vec<f32> {
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
    pub(super) fn backward(
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
pub(super) fn with_scratch<R>(
    first: usize,
    second: usize,
    work: impl FnOnce(&mut [f32], &mut [f32]) -> R,
) -> R {
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
pub(super) fn relu_gate(y: f32, dy: f32) -> f32 {
    f32::from_bits(dy.to_bits() & u32::from(y > 0.0).wrapping_neg())
}

/// A strided view of an f32 matrix.
#[derive(Clone, Copy)]
pub(super) struct Matrix<'a> {
    pub(super) data: &'a [f32],
    pub(super) rows: usize,
    pub(super) cols: usize,
    pub(super) row_stride: usize,
    pub(super) col_stride: usize,
}

impl<'a> Matrix<'a> {
    pub(super) fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Matrix { data, rows, cols, row_stride: cols, col_stride: 1 }
    }

    /// Whether every element lies inside `data`.
    pub(super) fn in_bounds(&self) -> bool {
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
pub(super) fn gemm_into(dst: &mut [f32], lhs: Matrix, rhs: Matrix, accumulate: bool) {
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
