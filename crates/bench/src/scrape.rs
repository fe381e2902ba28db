//! Reading a Prometheus text exposition: one scrape, and a histogram's `_sum` and `_count` per
//! value of one label (what `bench http --backend` reads of the server's signing-time histogram).

use std::collections::BTreeMap;

use super::BenchError;

/// Fetches the text exposition at `url`.
pub async fn fetch(http: &awc::Client, url: &str) -> Result<String, BenchError> {
    let scrape = |reason: String| BenchError::Scrape {
        url: url.to_string(),
        reason,
    };
    let mut resp = http
        .get(url)
        .send()
        .await
        .map_err(|e| scrape(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(scrape(format!("HTTP {}", resp.status())));
    }
    let body = resp
        .body()
        .limit(4 << 20)
        .await
        .map_err(|e| scrape(e.to_string()))?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// A histogram's totals for one label value.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct HistogramTotals {
    /// `<name>_sum`.
    pub sum: f64,
    /// `<name>_count`.
    pub count: f64,
}

impl HistogramTotals {
    /// What was observed between `before` and `self` (a later scrape).
    pub fn since(&self, before: &HistogramTotals) -> HistogramTotals {
        HistogramTotals {
            sum: self.sum - before.sum,
            count: self.count - before.count,
        }
    }

    /// The mean observation (`None` for no observation).
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0.0).then(|| self.sum / self.count)
    }
}

/// `<name>_sum` and `<name>_count` of histogram `name` per value of `label`, from a text
/// exposition (samples without that label are left out).
pub fn histogram_by_label(
    text: &str,
    name: &str,
    label: &str,
) -> BTreeMap<String, HistogramTotals> {
    let mut out: BTreeMap<String, HistogramTotals> = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim_start();
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (is_sum, rest) = if let Some(r) = rest.strip_prefix("_sum{") {
            (true, r)
        } else if let Some(r) = rest.strip_prefix("_count{") {
            (false, r)
        } else {
            continue;
        };
        let Some(end) = rest.find('}') else { continue };
        let (labels, value) = (&rest[..end], &rest[end + 1..]);
        let Some(value) = value
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        else {
            continue;
        };
        let prefix = format!("{label}=\"");
        let Some(label_value) = labels.split(',').find_map(|kv| {
            kv.trim()
                .strip_prefix(prefix.as_str())
                .and_then(|v| v.strip_suffix('"'))
        }) else {
            continue;
        };
        let totals = out.entry(label_value.to_string()).or_default();
        if is_sum {
            totals.sum = value;
        } else {
            totals.count = value;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_totals_per_label() {
        let text = "# HELP gateway_sign_seconds SM2 signing time\n\
            # TYPE gateway_sign_seconds histogram\n\
            gateway_sign_seconds_bucket{engine=\"sdf\",le=\"0.001\"} 3\n\
            gateway_sign_seconds_sum{engine=\"fast\"} 0.5\n\
            gateway_sign_seconds_count{engine=\"fast\"} 25000\n\
            gateway_sign_seconds_sum{engine=\"sdf\"} 1.25\n\
            gateway_sign_seconds_count{engine=\"sdf\"} 4\n\
            gateway_sign_seconds_total_other{engine=\"x\"} 9\n\
            gateway_verify_seconds_sum{engine=\"fast\"} 7\n";
        let h = histogram_by_label(text, "gateway_sign_seconds", "engine");
        assert_eq!(h.len(), 2, "{h:?}");
        assert_eq!(
            h["fast"],
            HistogramTotals {
                sum: 0.5,
                count: 25000.0
            }
        );
        assert_eq!(h["sdf"].mean(), Some(0.3125));
        let later = HistogramTotals {
            sum: 2.25,
            count: 6.0,
        };
        assert_eq!(
            later.since(&h["sdf"]),
            HistogramTotals {
                sum: 1.0,
                count: 2.0
            }
        );
        assert_eq!(HistogramTotals::default().mean(), None);
    }
}
