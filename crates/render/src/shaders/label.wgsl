// Label pass: writes exact ground truth instead of a colour. Rendered unlit into an
// Rgba16Float target with no MSAA, tonemapping, dithering or blending, so each channel
// holds an integer (or depth) exactly: r = semantic class id, g = instance id (the mesh
// tag: 0 for stuff, exact up to 2048 in f16), b = depth along the camera's view axis in
// metres, a = 1 where geometry was drawn.
// With label.w = 1 it writes the class colour instead (the preview's overlay).
#import bevy_pbr::{forward_io::VertexOutput, mesh_functions::get_tag, mesh_view_bindings::view}

@group(#{MATERIAL_BIND_GROUP}) @binding(0) var<uniform> label: vec4<f32>;
@group(#{MATERIAL_BIND_GROUP}) @binding(1) var<uniform> colour: vec4<f32>;

@fragment
fn fragment(in: VertexOutput) -> @location(0) vec4<f32> {
    if label.w > 0.5 {
        return colour;
    }
    let view_position = view.view_from_world * vec4(in.world_position.xyz, 1.0);
    return vec4(label.x, f32(get_tag(in.instance_index)), -view_position.z, 1.0);
}
