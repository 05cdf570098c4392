"""GraCo: granularity-controllable interactive segmentation."""
