"""GraCo as a Label Studio ML backend: keypoints and a granularity (or a part name) in, a brush mask out."""
