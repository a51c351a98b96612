// Fast shading of the RGB pass: Lambert diffuse plus a Blinn-Phong highlight under each
// directional light (with its shadow: `sun_shadow` below), ambient sky light (Bevy's
// split-sum approximation, diffuse and specular), then distance fog (`fogged` below, Bevy's
// fog functions), Bevy's tonemapping and debanding. Per pixel it does a fraction of StandardMaterial's work,
// which dominates frame time on a software rasteriser (lavapipe).
// With LABELS (a labelled material in the labelled opaque pass) it also writes the label
// attachment exactly as shaders/label.wgsl does: class id, instance id, depth along the
// camera's view axis in metres, 1.
#import bevy_pbr::{
    forward_io::VertexOutput,
    mesh_view_bindings::{view, lights},
    mesh_functions::get_tag,
    mesh_view_types::DIRECTIONAL_LIGHT_FLAGS_SHADOWS_ENABLED_BIT,
    shadows::{get_cascade_index, world_to_directional_light_local},
    shadow_sampling::sample_shadow_map_hardware,
    lighting::{EnvBRDFApprox, F_AB},
}
#import bevy_render::maths::PI
#ifdef DISTANCE_FOG
#import bevy_pbr::{
    mesh_view_bindings::fog,
    mesh_view_types::{FOG_MODE_LINEAR, FOG_MODE_EXPONENTIAL, FOG_MODE_EXPONENTIAL_SQUARED, FOG_MODE_ATMOSPHERIC},
    fog::{linear_fog, exponential_fog, exponential_squared_fog, atmospheric_fog},
}
#endif
#ifdef TONEMAP_IN_SHADER
#import bevy_core_pipeline::tonemapping::{tone_mapping, screen_space_dither}
#import bevy_render::maths::powsafe
#endif

struct FastLit {
    // Linear RGBA, multiplied by the mesh's vertex colours.
    base_colour: vec4<f32>,
    // x: highlight strength, y: Blinn-Phong exponent, z: perceptual roughness,
    // w: reflectance at normal incidence.
    specular: vec4<f32>,
    // x: semantic class id, y: instance id (0 for stuff); read with LABELS only.
    label: vec4<f32>,
}

@group(#{MATERIAL_BIND_GROUP}) @binding(0) var<uniform> material: FastLit;

// What Bevy's split-sum ambient term gives a rough dielectric: about 0.45 of the albedo
// (EnvBRDFApprox with F_AB(1, n·v)), so both shadings agree in overcast light.
const AMBIENT_DIFFUSE: f32 = 0.45;

#ifdef LABELS
struct Output {
    @location(0) colour: vec4<f32>,
    @location(1) label: vec4<f32>,
}

@fragment
fn fragment(in: VertexOutput) -> Output {
    let view_position = view.view_from_world * vec4(in.world_position.xyz, 1.0);
    return Output(shade(in), vec4(material.label.x, material.label.y, -view_position.z, 1.0));
}
#else
@fragment
fn fragment(in: VertexOutput) -> @location(0) vec4<f32> {
    return shade(in);
}
#endif

fn shade(in: VertexOutput) -> vec4<f32> {
    var albedo = material.base_colour;
#ifdef VERTEX_COLORS
    albedo = albedo * in.color;
#endif
    // A mesh tag tints one instance (a car's paint) without a material of its own, so that
    // cars share materials (one, or one per car id when labelled) and unlabelled ones batch:
    // linear RGB, 10 bits each, 0 = no tint.
    let tag = get_tag(in.instance_index);
    if tag != 0u {
        let tint = vec3(f32((tag >> 20u) & 1023u), f32((tag >> 10u) & 1023u), f32(tag & 1023u)) / 1023.0;
        albedo = vec4(albedo.rgb * tint, albedo.a);
    }
    let n = normalize(in.world_normal);
    let v = normalize(view.world_position - in.world_position.xyz);
    let view_z = dot(vec4(
        view.view_from_world[0].z,
        view.view_from_world[1].z,
        view.view_from_world[2].z,
        view.view_from_world[3].z,
    ), in.world_position);
    // Ambient sky light, diffuse and specular (the latter lights up a wet road), as Bevy's.
    let n_dot_v = max(dot(n, v), 0.0001);
    let ambient_specular = EnvBRDFApprox(vec3(material.specular.w), F_AB(material.specular.z, n_dot_v));
    var light = (albedo.rgb * AMBIENT_DIFFUSE + ambient_specular) * lights.ambient_color.rgb;
    for (var i = 0u; i < lights.n_directional_lights; i = i + 1u) {
        let sun = &lights.directional_lights[i];
        let l = (*sun).direction_to_light;
        let n_dot_l = max(dot(n, l), 0.0);
        if n_dot_l <= 0.0 {
            continue;
        }
        var shadow = 1.0;
        if ((*sun).flags & DIRECTIONAL_LIGHT_FLAGS_SHADOWS_ENABLED_BIT) != 0u {
            shadow = sun_shadow(i, in.world_position, n, view_z);
        }
        let highlight = material.specular.x * pow(max(dot(n, normalize(l + v)), 0.0), material.specular.y);
        light += (albedo.rgb / PI + vec3(highlight)) * (*sun).color.rgb * (n_dot_l * shadow);
    }
    var colour = vec4(light * view.exposure, albedo.a);
#ifdef DISTANCE_FOG
    colour = fogged(colour, in.world_position.xyz);
#endif
#ifdef TONEMAP_IN_SHADER
    colour = tone_mapping(colour, view.color_grading);
#ifdef DEBAND_DITHER
    // As Bevy's PBR shader: dither in gamma space, back to linear for the sRGB target.
    let dithered = powsafe(colour.rgb, 1.0 / 2.2) + screen_space_dither(in.position.xy);
    colour = vec4(powsafe(dithered, 2.2), colour.a);
#endif
#endif
    return colour;
}

// Bevy's `fetch_directional_shadow` for what our suns use (one cascade, hardware 2x2 PCF, no
// soft shadows), to the same bits, without the paths of other settings: lavapipe runs both
// sides of every branch under a mask, so Bevy's function ran its soft-shadow search and
// filter and a second cascade's lookup for every fragment, shadows on or off.
fn sun_shadow(light_id: u32, frag_position: vec4<f32>, surface_normal: vec3<f32>, view_z: f32) -> f32 {
    let sun = &lights.directional_lights[light_id];
    let cascade_index = get_cascade_index(light_id, view_z);
    if cascade_index >= (*sun).num_cascades {
        return 1.0;
    }
    let cascade = &(*sun).cascades[cascade_index];
    let normal_offset = (*sun).shadow_normal_bias * (*cascade).texel_size * surface_normal.xyz;
    let depth_offset = (*sun).shadow_depth_bias * (*sun).direction_to_light.xyz;
    let offset_position = vec4<f32>(frag_position.xyz + normal_offset + depth_offset, frag_position.w);
    let light_local = world_to_directional_light_local(light_id, cascade_index, offset_position);
    if light_local.w == 0.0 {
        return 1.0;
    }
    let array_index = i32((*sun).depth_texture_base_index + cascade_index);
    return sample_shadow_map_hardware(light_local.xy, light_local.z, array_index);
}

#ifdef DISTANCE_FOG
// Bevy's `apply_fog` without the sun's in-scattering, which our fog leaves off
// (`DistanceFog::directional_light_color` is none: spawn.rs): under lavapipe's masks its
// branch ran a shadow lookup for every fragment all the same.
fn fogged(colour: vec4<f32>, world_position: vec3<f32>) -> vec4<f32> {
    let distance = length(world_position - view.world_position.xyz);
    let scattering = vec3<f32>(0.0);
    if fog.mode == FOG_MODE_LINEAR {
        return linear_fog(fog, colour, distance, scattering);
    } else if fog.mode == FOG_MODE_EXPONENTIAL {
        return exponential_fog(fog, colour, distance, scattering);
    } else if fog.mode == FOG_MODE_EXPONENTIAL_SQUARED {
        return exponential_squared_fog(fog, colour, distance, scattering);
    } else if fog.mode == FOG_MODE_ATMOSPHERIC {
        return atmospheric_fog(fog, colour, distance, scattering);
    }
    return colour;
}
#endif
