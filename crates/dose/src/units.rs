//! Units by their UCUM code, converted to the canonical unit of their quantity. Devices
//! send what they send: Canon angiography systems give the dose–area product in dGy·cm²
//! and Dose (RP) in mGy where the standard says Gy·m² and Gy. Conversion is by the code,
//! never by the meaning, and a unit of the wrong quantity is refused, not guessed.

/// What a number measures, and so which canonical unit it is stored in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantity {
    /// Absorbed dose or air kerma: mGy.
    Dose,
    /// Dose–length product: mGy·cm.
    DoseLength,
    /// Dose–area product: Gy·cm².
    DoseArea,
    /// Activity: MBq.
    Activity,
    /// Time: s.
    Time,
    /// Length: mm.
    Length,
    /// Tube voltage: kV.
    Voltage,
    /// Tube current: mA.
    Current,
    /// Angle: degrees.
    Angle,
    /// A ratio (pitch) or a count: unitless.
    Ratio,
    /// Rate (pulses per second).
    Rate,
}

impl Quantity {
    /// The factor that takes a value in `ucum` to this quantity's canonical unit.
    pub fn factor(self, ucum: &str) -> Option<f64> {
        // UCUM writes a product with `.`; some devices write `*` and exponents with `^`.
        // Siemens angiography writes `Gym2` for Gy.m2: a dose unit run into an area.
        let unit: String = ucum.trim().replace('*', ".").replace('^', "").replace('µ', "u");
        let unit = if unit.contains("Gy.") { unit } else { unit.replacen("Gym", "Gy.m", 1).replacen("Gyc", "Gy.c", 1) };
        let dose = |prefix: &str| -> Option<f64> {
            Some(match prefix {
                "" => 1000.0,
                "d" => 100.0,
                "c" => 10.0,
                "m" => 1.0,
                "u" => 0.001,
                _ => return None,
            })
        };
        let split = |suffix: &str| unit.strip_suffix(suffix).and_then(|p| p.strip_suffix("Gy"));
        match self {
            Quantity::Dose => dose(unit.strip_suffix("Gy")?),
            Quantity::DoseLength => {
                let (prefix, length) = if let Some(p) = split(".cm") {
                    (p, 1.0)
                } else if let Some(p) = split(".mm") {
                    (p, 0.1)
                } else {
                    (split(".m")?, 100.0)
                };
                Some(dose(prefix)? * length)
            }
            Quantity::DoseArea => {
                // To Gy·cm²: the dose prefix (relative to Gy), times the area in cm².
                let (prefix, area) = if let Some(p) = split(".cm2") {
                    (p, 1.0)
                } else if let Some(p) = split(".mm2") {
                    (p, 0.01)
                } else {
                    (split(".m2")?, 10_000.0)
                };
                Some(dose(prefix)? / 1000.0 * area)
            }
            Quantity::Activity => Some(match unit.as_str() {
                "Bq" => 1e-6,
                "kBq" => 1e-3,
                "MBq" => 1.0,
                "GBq" => 1e3,
                "uCi" => 0.037,
                "mCi" => 37.0,
                "Ci" => 37_000.0,
                _ => return None,
            }),
            Quantity::Time => Some(match unit.as_str() {
                "s" => 1.0,
                "ms" => 1e-3,
                "us" => 1e-6,
                "min" => 60.0,
                "h" => 3600.0,
                _ => return None,
            }),
            Quantity::Length => Some(match unit.as_str() {
                "mm" => 1.0,
                "cm" => 10.0,
                "m" => 1000.0,
                "um" => 1e-3,
                _ => return None,
            }),
            Quantity::Voltage => Some(match unit.as_str() {
                "kV" => 1.0,
                "V" => 1e-3,
                _ => return None,
            }),
            Quantity::Current => Some(match unit.as_str() {
                "mA" => 1.0,
                "A" => 1e3,
                "uA" => 1e-3,
                _ => return None,
            }),
            Quantity::Angle => matches!(unit.as_str(), "deg" | "°").then_some(1.0),
            // A UCUM annotation alone (`{ratio}`, `{events}`) is unitless.
            Quantity::Ratio => (matches!(unit.as_str(), "1" | "") || is_annotation(&unit)).then_some(1.0),
            Quantity::Rate => {
                if unit == "Hz" {
                    return Some(1.0);
                }
                let per = unit.strip_suffix("/s")?;
                (matches!(per, "" | "1") || is_annotation(per)).then_some(1.0)
            }
        }
    }

    /// The unit a standard-conforming device sends, for the notes on odd ones.
    pub fn standard(self) -> &'static str {
        match self {
            Quantity::Dose => "Gy or mGy",
            Quantity::DoseLength => "mGy.cm",
            Quantity::DoseArea => "Gy.m2",
            Quantity::Activity => "MBq",
            Quantity::Time => "s",
            Quantity::Length => "mm",
            Quantity::Voltage => "kV",
            Quantity::Current => "mA",
            Quantity::Angle => "deg",
            Quantity::Ratio => "1",
            Quantity::Rate => "{pulse}/s",
        }
    }
}

fn is_annotation(unit: &str) -> bool {
    unit.starts_with('{') && unit.ends_with('}')
}

#[cfg(test)]
mod tests {
    use super::Quantity::*;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-12 * b.abs().max(1.0))
    }

    #[test]
    fn dose_area_products_of_every_vendor_land_in_gray_square_centimetres() {
        assert!(close(DoseArea.factor("Gy.m2"), 10_000.0));
        assert!(close(DoseArea.factor("Gy.cm2"), 1.0));
        // Canon: dGy·cm².
        assert!(close(DoseArea.factor("dGy.cm2"), 0.1));
        assert!(close(DoseArea.factor("cGy.cm2"), 0.01));
        assert!(close(DoseArea.factor("mGy.cm2"), 0.001));
        assert!(close(DoseArea.factor("uGy.m2"), 0.01));
        assert!(close(DoseArea.factor("Gy*m^2"), 10_000.0));
        // Siemens.
        assert!(close(DoseArea.factor("Gym2"), 10_000.0));
        assert!(close(DoseArea.factor("dGycm2"), 0.1));
        assert!(close(Dose.factor("mGy"), 1.0));
        assert_eq!(DoseArea.factor("mGy"), None);
    }

    #[test]
    fn doses_land_in_milligray_and_lengths_products_in_milligray_centimetres() {
        assert!(close(Dose.factor("Gy"), 1000.0));
        assert!(close(Dose.factor("mGy"), 1.0));
        assert!(close(Dose.factor("dGy"), 100.0));
        assert_eq!(Dose.factor("Gy.m2"), None);
        assert!(close(DoseLength.factor("mGy.cm"), 1.0));
        assert!(close(DoseLength.factor("Gy.cm"), 1000.0));
        assert!(close(DoseLength.factor("mGy.mm"), 0.1));
        assert_eq!(DoseLength.factor("mGy"), None);
    }

    #[test]
    fn activity_time_and_length() {
        assert!(close(Activity.factor("GBq"), 1000.0));
        assert!(close(Activity.factor("mCi"), 37.0));
        assert!(close(Activity.factor("Bq"), 1e-6));
        assert!(close(Time.factor("min"), 60.0));
        assert!(close(Time.factor("ms"), 0.001));
        assert!(close(Length.factor("cm"), 10.0));
        assert_eq!(Length.factor("mGy"), None);
    }
}
