//! The CPU backend's convolution + ReLU: the GEMM path where it applies (see
//! [`Geometry::of`]), else burn's operations; tensors as NHWC data under NCHW views.

use std::borrow::Cow;

use burn::backend::flex::FlexTensor;
use burn::backend::{Flex, TensorMetadata};
use burn::tensor::TensorData;
use burn::tensor::ops::ConvOptions;

use super::geometry::{Columns, Geometry};
use super::{ConvReluBackend, ConvReluGrads, burn_conv2d_relu, burn_conv2d_relu_backward};

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

/// The values of an f32 NCHW tensor whose data lies in NHWC order, borrowed; `None` for
/// any other layout.
pub(super) fn nhwc_slice(tensor: &FlexTensor) -> Option<&[f32]> {
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
