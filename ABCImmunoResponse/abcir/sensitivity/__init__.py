"""How much the prediction depends on the outlines of the target lesions (issue 17).

``perturbations`` defines the outline changes (erosion / dilation by 1 mm,
supervoxel contour randomisation of Zwanenburg et al. 2019, optional one-voxel
shifts); ``analysis.analyse_sensitivity`` recomputes the prediction under each,
one lesion at a time, and returns a ``result.SensitivityResult``. What the range
means: how far the probability moves under plausible outline changes; not a
confidence interval of the probability.
"""
