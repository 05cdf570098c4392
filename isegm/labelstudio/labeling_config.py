"""The parts of a Label Studio labeling config the backend uses: image, keypoints, brush, granularity, part name."""
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from ..utils.extras import require_extra

parse_config = require_extra("labelstudio", "label_studio_tools.core.label_config",
                             "the Label Studio backend").parse_config

GRANULARITY_RANGE = (0.1, 1.0)

# Ready to paste into Label Studio (Settings > Labeling Interface > Code); the README shows the same config.
EXAMPLE_CONFIG = """<View>
  <Image name="image" value="$image" zoom="true"/>
  <BrushLabels name="mask" toName="image">
    <Label value="Object" background="#ff6600"/>
  </BrushLabels>
  <KeyPointLabels name="click" toName="image" smart="true">
    <Label value="Positive" smart="true" background="#00cc00" showInline="true"/>
    <Label value="Negative" smart="true" background="#cc0000" showInline="true"/>
  </KeyPointLabels>
  <Header value="Granularity (0.1 = small part, 1.0 = whole object)"/>
  <Number name="granularity" toName="image" min="0.1" max="1" step="0.1" defaultValue="1"/>
  <Header value="Part name (optional, replaces the granularity)"/>
  <TextArea name="part" toName="image" editable="true" maxSubmissions="1"/>
</View>"""


class LabelingConfigError(ValueError):
    """The labeling config lacks a tag the backend needs."""


@dataclass(frozen=True)
class LabelingConfig:
    """Names of the controls the backend reads and writes.

    ``negative_labels`` are the keypoint labels that make a negative click; all other keypoint labels are positive.
    """
    image_name: str
    image_value: str
    keypoints_name: str
    keypoint_labels: Tuple[str, ...]
    negative_labels: Tuple[str, ...]
    brush_name: str
    brush_label: str
    granularity_name: Optional[str] = None
    granularity_kind: Optional[str] = None  # "number" or "choices"
    default_granularity: float = 1.0
    phrase_name: Optional[str] = None

    @classmethod
    def parse(cls, xml: str, negative_label: str = "Negative") -> "LabelingConfig":
        """Read the control names from a labeling config (XML); raise :class:`LabelingConfigError` if one is missing."""
        try:
            controls: Dict[str, dict] = parse_config(xml)
        except Exception as error:  # lxml syntax errors come wrapped in a Label Studio exception class
            raise LabelingConfigError(f"the labeling config is not valid XML: {error}") from None

        def find(tag: str) -> Optional[Tuple[str, dict]]:
            found = [(name, info) for name, info in controls.items() if info["type"].lower() == tag]
            return found[0] if found else None

        keypoints, brush = find("keypointlabels"), find("brushlabels")
        if keypoints is None or brush is None:
            raise LabelingConfigError("the labeling config needs a <KeyPointLabels> and a <BrushLabels> control "
                                      "on an <Image> (see the README)")
        images = [i for i in keypoints[1]["inputs"] if i["type"].lower() == "image"]
        if not images:
            raise LabelingConfigError(f"<KeyPointLabels name={keypoints[0]!r}> must point at an <Image>")
        if not brush[1]["labels"]:
            raise LabelingConfigError(f"<BrushLabels name={brush[0]!r}> has no <Label>")
        labels = tuple(keypoints[1]["labels"])
        if not labels:
            raise LabelingConfigError(f"<KeyPointLabels name={keypoints[0]!r}> has no <Label>")
        negatives = tuple(label for label in labels if label.lower() == negative_label.lower())

        gra_name, gra_kind, gra_default = None, None, 1.0
        number = find("number")
        choices = [(n, i) for n, i in controls.items() if i["type"].lower() == "choices" and _numeric(i["labels"])]
        if number is not None:
            gra_name, gra_kind = number[0], "number"
            gra_default = _number_default(xml, number[0])
        elif choices:
            gra_name, gra_kind = choices[0][0], "choices"
        phrase = find("textarea")
        return cls(image_name=keypoints[1]["to_name"][0], image_value=images[0]["value"],
                   keypoints_name=keypoints[0], keypoint_labels=labels, negative_labels=negatives,
                   brush_name=brush[0], brush_label=brush[1]["labels"][0], granularity_name=gra_name,
                   granularity_kind=gra_kind, default_granularity=gra_default,
                   phrase_name=phrase[0] if phrase else None)


def _numeric(labels) -> bool:
    try:
        return bool(labels) and all(float(label) == float(label) for label in labels)
    except ValueError:
        return False


def _number_default(xml: str, name: str) -> float:
    """The ``defaultValue`` of the <Number name=...> control, clipped to the granularity range (1.0 if absent)."""
    etree = require_extra("labelstudio", "lxml.etree", "the Label Studio backend")
    for tag in etree.fromstring(xml).iter("Number"):
        if tag.attrib.get("name") == name and "defaultValue" in tag.attrib:
            try:
                value = float(tag.attrib["defaultValue"])
            except ValueError:
                return 1.0
            return min(max(value, GRANULARITY_RANGE[0]), GRANULARITY_RANGE[1])
    return 1.0
