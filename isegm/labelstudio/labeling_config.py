"""The parts of a Label Studio labeling config the backend uses: image, keypoints, brush, granularity, part name."""
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from label_studio_tools.core.label_config import parse_config

GRANULARITY_RANGE = (0.1, 1.0)

# Ready to paste into Label Studio (Settings > Labeling Interface > Code); the README shows the same config. The
# smart keypoint labels carry the signal: ``gra`` a granularity (0.1 part .. 1.0 whole object), ``phrase`` a part
# name (needs the CLIP weights). Alt+click places a negative keypoint of the same label.
EXAMPLE_CONFIG = """<View>
  <Image name="image" value="$image" zoom="true"/>
  <BrushLabels name="mask" toName="image">
    <Label value="Object" background="#ff6600"/>
  </BrushLabels>
  <KeyPointLabels name="click" toName="image" smart="true">
    <Label value="Part 0.2" gra="0.2" smart="true" background="#00aa00"/>
    <Label value="Part 0.5" gra="0.5" smart="true" background="#aaaa00"/>
    <Label value="Part 0.8" gra="0.8" smart="true" background="#0077cc"/>
    <Label value="Whole object" gra="1.0" smart="true" background="#cc00cc"/>
    <Label value="head" phrase="head" smart="true" background="#cc0000"/>
  </KeyPointLabels>
</View>"""

# Clients of the API may instead send the granularity in a Number (or numeric Choices) result and a part name in a
# TextArea result, with Positive / Negative keypoint labels.
API_CONFIG = """<View>
  <Image name="image" value="$image" zoom="true"/>
  <BrushLabels name="mask" toName="image">
    <Label value="Object" background="#ff6600"/>
  </BrushLabels>
  <KeyPointLabels name="click" toName="image" smart="true">
    <Label value="Positive" smart="true" background="#00cc00"/>
    <Label value="Negative" smart="true" background="#cc0000"/>
  </KeyPointLabels>
  <Number name="granularity" toName="image" min="0.1" max="1" step="0.1" defaultValue="1"/>
  <TextArea name="part" toName="image" editable="true" maxSubmissions="1"/>
</View>"""


@dataclass(frozen=True)
class LabelSignal:
    """What a keypoint label asks for: a granularity (``gra``), a part name (``phrase``) or neither (the request's
    controls decide)."""
    gra: Optional[float] = None
    phrase: Optional[str] = None


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
    label_signals: Tuple[Tuple[str, LabelSignal], ...] = ()

    def label_signal(self, label: str) -> LabelSignal:
        """The signal a keypoint label carries (its ``gra`` or ``phrase`` attribute)."""
        return dict(self.label_signals).get(label, LabelSignal())

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
        signals = tuple((label, _label_signal(label, keypoints[1].get("labels_attrs", {}).get(label, {})))
                        for label in labels)

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
                   phrase_name=phrase[0] if phrase else None, label_signals=signals)


def _label_signal(label: str, attrs: Dict[str, str]) -> LabelSignal:
    """The ``gra`` / ``phrase`` attributes of a keypoint <Label> (``granularity`` is Label Studio's own, for text)."""
    gra, phrase = attrs.get("gra"), (attrs.get("phrase") or "").strip() or None
    if gra is not None and phrase is not None:
        raise LabelingConfigError(f"<Label value={label!r}> has both gra and phrase: give one")
    if gra is None:
        return LabelSignal(phrase=phrase)
    low, high = GRANULARITY_RANGE
    try:
        value = float(gra)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:
        raise LabelingConfigError(f"<Label value={label!r}> has gra={gra!r}: it must be a number in [{low}, {high}]")
    return LabelSignal(gra=value)


def _numeric(labels) -> bool:
    try:
        return bool(labels) and all(float(label) == float(label) for label in labels)
    except ValueError:
        return False


def _number_default(xml: str, name: str) -> float:
    """The ``defaultValue`` of the <Number name=...> control, clipped to the granularity range (1.0 if absent)."""
    from lxml import etree
    for tag in etree.fromstring(xml).iter("Number"):
        if tag.attrib.get("name") == name and "defaultValue" in tag.attrib:
            try:
                value = float(tag.attrib["defaultValue"])
            except ValueError:
                return 1.0
            return min(max(value, GRANULARITY_RANGE[0]), GRANULARITY_RANGE[1])
    return 1.0
