//! One pass for RGB and labels: the RGB camera's opaque pass writes the lit colour to its
//! own target and (class id, instance id, depth, 1) to the slot's label image, as a second
//! colour attachment. The label camera, its render layer and every label entity go away,
//! and the labels come from the very draws that made the RGB pixels.
//!
//! Bevy's own opaque pass (`main_opaque_pass_3d`) has one colour attachment, so a camera
//! that carries a [`LabelTarget`] renders through [`LabelledCore3d`]: Bevy's `Core3d`
//! schedule with the parts these scenes use (the sun's shadow pass, the opaque pass with
//! two attachments, the transparent pass for rain, tonemapping and the blit into the
//! target). Every opaque mesh such a camera sees must write both attachments: the
//! [`crate::materials::FastLitMaterial`]s made by [`crate::materials::FastLitMaterial::labelled`].
//!
//! Where the device preprocesses meshes on the GPU (lavapipe does, without culling), the
//! schedule runs Bevy's preprocessing passes before the shadow pass, as `Core3d` does. Left
//! out of `Core3d`: the prepasses and the late (occlusion-culling) passes, which run only
//! for cameras with a depth prepass; point and spot light shadows; GPU light clustering
//! (the sun, the only light, is not clustered, and these materials read no clusters). The
//! worker uses this schedule on devices that do not cull on the GPU (see
//! `Worker::labels_in_rgb_pass`).

use bevy::core_pipeline::Core3dSystems;
use bevy::core_pipeline::core_3d::{AlphaMask3d, Opaque3d, main_transparent_pass_3d};
use bevy::core_pipeline::prepass::{DeferredPrepass, DepthPrepass, MotionVectorPrepass, NormalPrepass};
use bevy::core_pipeline::tonemapping::tonemapping;
use bevy::core_pipeline::upscaling::upscaling;
use bevy::ecs::schedule::common_conditions::any_match_filter;
use bevy::ecs::schedule::{ScheduleBuildSettings, ScheduleLabel};
use bevy::pbr::{
    EARLY_SHADOW_PASS, PreprocessBindGroups, PreprocessPipelines, ShadowView, SkipGpuPreprocess,
    clear_indirect_parameters_metadata, early_gpu_preprocess, early_prepass_build_indirect_parameters,
    main_build_indirect_parameters, per_view_shadow_pass, unpack_bins,
};
use bevy::prelude::*;
use bevy::render::RenderApp;
use bevy::render::camera::ExtractedCamera;
use bevy::render::extract_component::{ExtractComponent, ExtractComponentPlugin};
use bevy::render::render_asset::RenderAssets;
use bevy::render::render_phase::ViewBinnedRenderPhases;
use bevy::render::render_resource::{
    LoadOp, Operations, RenderPassColorAttachment, RenderPassDescriptor, StoreOp,
};
use bevy::render::renderer::{RenderContext, ViewQuery};
use bevy::render::texture::GpuImage;
use bevy::render::view::NoIndirectDrawing;
use bevy::render::view::{ExtractedView, ViewDepthTexture, ViewTarget};

/// The render schedule of RGB cameras that also write labels.
#[derive(ScheduleLabel, Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct LabelledCore3d;

/// The label image an RGB camera writes as its second colour attachment, and the value
/// its pixels get where nothing is drawn (the sky's class id, instance 0, depth 0).
#[derive(Component, Clone, Debug, ExtractComponent)]
pub struct LabelTarget {
    pub image: Handle<Image>,
    pub clear: LinearRgba,
}

/// Registers [`LabelledCore3d`] and extracts [`LabelTarget`]s.
pub struct LabelledPassPlugin;

impl Plugin for LabelledPassPlugin {
    fn build(&self, app: &mut App) {
        app.add_plugins(ExtractComponentPlugin::<LabelTarget>::default());
        let Some(render_app) = app.get_sub_app_mut(RenderApp) else {
            return;
        };
        let mut schedule = Schedule::new(LabelledCore3d);
        schedule.set_build_settings(ScheduleBuildSettings { auto_insert_apply_deferred: false, ..default() });
        schedule.configure_sets(
            (
                Core3dSystems::Prepass,
                Core3dSystems::MainPass,
                Core3dSystems::EarlyPostProcess,
                Core3dSystems::PostProcess,
            )
                .chain(),
        );
        // Bevy's mesh preprocessing, as `GpuMeshPreprocessPlugin` adds it to `Core3d` (less
        // the late, occlusion-culling passes); it exists only where the device supports it.
        let with_shadow_views = any_match_filter::<(
            With<PreprocessBindGroups>,
            Without<SkipGpuPreprocess>,
            Without<NoIndirectDrawing>,
            Or<(
                With<DepthPrepass>,
                With<NormalPrepass>,
                With<MotionVectorPrepass>,
                With<DeferredPrepass>,
                With<ShadowView>,
            )>,
        )>;
        let with_main_views = any_match_filter::<(
            With<PreprocessBindGroups>,
            Without<SkipGpuPreprocess>,
            Without<NoIndirectDrawing>,
        )>;
        schedule.add_systems((
            (
                clear_indirect_parameters_metadata,
                unpack_bins,
                early_gpu_preprocess,
                early_prepass_build_indirect_parameters.run_if(with_shadow_views),
            )
                .chain()
                .run_if(resource_exists::<PreprocessPipelines>)
                .in_set(Core3dSystems::Prepass)
                .before(per_view_shadow_pass::<EARLY_SHADOW_PASS>),
            per_view_shadow_pass::<EARLY_SHADOW_PASS>.in_set(Core3dSystems::Prepass),
            main_build_indirect_parameters
                .run_if(with_main_views)
                .run_if(resource_exists::<PreprocessPipelines>)
                .after(per_view_shadow_pass::<EARLY_SHADOW_PASS>)
                .in_set(Core3dSystems::Prepass),
            (labelled_opaque_pass, main_transparent_pass_3d).chain().in_set(Core3dSystems::MainPass),
            tonemapping.in_set(Core3dSystems::PostProcess),
            upscaling.after(Core3dSystems::PostProcess),
        ));
        render_app.add_schedule(schedule);
    }
}

/// Bevy's `main_opaque_pass_3d` with the label image as a second colour attachment.
fn labelled_opaque_pass(
    world: &World,
    view: ViewQuery<(&ExtractedCamera, &ExtractedView, &ViewTarget, &ViewDepthTexture, &LabelTarget)>,
    opaque_phases: Res<ViewBinnedRenderPhases<Opaque3d>>,
    alpha_mask_phases: Res<ViewBinnedRenderPhases<AlphaMask3d>>,
    images: Res<RenderAssets<GpuImage>>,
    mut ctx: RenderContext,
) {
    let view_entity = view.entity();
    let (camera, extracted_view, target, depth, label) = view.into_inner();
    let (Some(opaque_phase), Some(alpha_mask_phase)) = (
        opaque_phases.get(&extracted_view.retained_view_entity),
        alpha_mask_phases.get(&extracted_view.retained_view_entity),
    ) else {
        return;
    };
    // Not uploaded yet: the frame is not captured either (its targets are missing).
    let Some(label_image) = images.get(&label.image) else {
        return;
    };
    let color_attachments = [
        Some(target.get_color_attachment()),
        Some(RenderPassColorAttachment {
            view: &label_image.texture_view,
            depth_slice: None,
            resolve_target: None,
            ops: Operations { load: LoadOp::Clear(label.clear.into()), store: StoreOp::Store },
        }),
    ];
    let mut render_pass = ctx.begin_tracked_render_pass(RenderPassDescriptor {
        label: Some("l2s_labelled_opaque_pass"),
        color_attachments: &color_attachments,
        depth_stencil_attachment: Some(depth.get_attachment(StoreOp::Store)),
        timestamp_writes: None,
        occlusion_query_set: None,
        multiview_mask: None,
    });
    if let Some(viewport) = camera.viewport.as_ref() {
        render_pass.set_camera_viewport(viewport);
    }
    if let Err(err) = opaque_phase.render(&mut render_pass, world, view_entity) {
        error!("the labelled opaque pass could not draw the opaque phase: {err:?}");
    }
    if let Err(err) = alpha_mask_phase.render(&mut render_pass, world, view_entity) {
        error!("the labelled opaque pass could not draw the alpha-mask phase: {err:?}");
    }
}
