//! Shards: `--shard I/N` runs the points whose index is I modulo N; without it, a Slurm job
//! array's task id and count choose the shard.

use crate::error::InputError;
use std::fmt;

/// Which points one process runs: those with `index % count == index_of_shard`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Shard {
    index: usize,
    count: usize,
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// Every point (shard 0 of 1).
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// A shard; `index < count` is checked.
    pub fn new(index: usize, count: usize) -> Result<Shard, String> {
        if count == 0 {
            return Err("the shard count N must be at least 1".into());
        }
        if index >= count {
            return Err(format!(
                "shard index {index} is out of range: with {count} shards it is 0..={} (shards count from 0)",
                count - 1
            ));
        }
        Ok(Shard { index, count })
    }

    /// Parses `I/N` as given to `--shard`.
    pub fn parse(text: &str) -> Result<Shard, InputError> {
        let err = |m: String| InputError::new("<command line>", "--shard", m);
        let (i, n) = text
            .split_once('/')
            .ok_or_else(|| err(format!("`{text}` is not I/N (e.g. 0/4)")))?;
        let num = |s: &str| {
            s.trim()
                .parse::<usize>()
                .map_err(|_| err(format!("`{text}` is not I/N: `{s}` is not a whole number")))
        };
        Shard::new(num(i)?, num(n)?).map_err(err)
    }

    /// The shard of a Slurm job-array task, if the variables are set: task ids run from
    /// `SLURM_ARRAY_TASK_MIN` (0 or 1, or anything) in steps of `SLURM_ARRAY_TASK_STEP`, so
    /// the shard index is (id - min) / step and the count `SLURM_ARRAY_TASK_COUNT`.
    /// `var` reads an environment variable (a parameter so tests need not set the process's).
    pub fn from_slurm(var: impl Fn(&str) -> Option<String>) -> Result<Option<Shard>, InputError> {
        let (Some(id), Some(count)) = (var("SLURM_ARRAY_TASK_ID"), var("SLURM_ARRAY_TASK_COUNT"))
        else {
            return Ok(None);
        };
        let num = |name: &str, v: &str| {
            v.trim().parse::<usize>().map_err(|_| {
                InputError::new(
                    "<environment>",
                    name,
                    format!("`{v}` is not a whole number"),
                )
            })
        };
        let id = num("SLURM_ARRAY_TASK_ID", &id)?;
        let count = num("SLURM_ARRAY_TASK_COUNT", &count)?;
        let min = match var("SLURM_ARRAY_TASK_MIN") {
            Some(v) => num("SLURM_ARRAY_TASK_MIN", &v)?,
            None => 0,
        };
        let step = match var("SLURM_ARRAY_TASK_STEP") {
            Some(v) => num("SLURM_ARRAY_TASK_STEP", &v)?.max(1),
            None => 1,
        };
        let bad = |m: String| {
            InputError::new(
                "<environment>",
                "SLURM_ARRAY_TASK_ID",
                format!("{m}; pass --shard I/N to choose the shard yourself"),
            )
        };
        if id < min || (id - min) % step != 0 {
            return Err(bad(format!(
                "task id {id} is not in the array {min}, {}, ... (step {step})",
                min + step
            )));
        }
        Shard::new((id - min) / step, count)
            .map(Some)
            .map_err(|m| bad(format!("task id {id} with min {min}, step {step}: {m}; an array with gaps (e.g. --array=0,5,9) cannot be mapped to shards")))
    }

    pub fn index(&self) -> usize {
        self.index
    }

    pub fn count(&self) -> usize {
        self.count
    }

    pub fn contains(&self, point_index: usize) -> bool {
        point_index % self.count == self.index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_range() {
        assert_eq!(Shard::parse("2/3").unwrap(), Shard::new(2, 3).unwrap());
        let e = Shard::parse("3/3").unwrap_err();
        assert_eq!(e.key, "--shard");
        assert!(e.message.contains("out of range"), "{e}");
        assert!(
            Shard::parse("1/0")
                .unwrap_err()
                .message
                .contains("at least 1")
        );
        assert!(
            Shard::parse("x/2")
                .unwrap_err()
                .message
                .contains("not a whole number")
        );
        assert!(Shard::parse("1").unwrap_err().message.contains("not I/N"));
        let s = Shard::new(1, 3).unwrap();
        let mine: Vec<usize> = (0..10).filter(|&i| s.contains(i)).collect();
        assert_eq!(mine, [1, 4, 7]);
    }

    #[test]
    fn slurm_arrays_starting_at_0_or_1_or_with_a_step() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(Shard::from_slurm(env(&[])).unwrap(), None);
        const ONE_BASED: &[(&str, &str)] = &[
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
        ];
        assert_eq!(
            Shard::from_slurm(env(ONE_BASED)).unwrap(),
            Some(Shard::new(2, 3).unwrap())
        );
        const STEPPED: &[(&str, &str)] = &[
            ("SLURM_ARRAY_TASK_ID", "6"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_STEP", "2"),
        ];
        assert_eq!(
            Shard::from_slurm(env(STEPPED)).unwrap(),
            Some(Shard::new(3, 4).unwrap())
        );
        // 1-based ids read as 0-based would give shard 3 of 3: out of range, said clearly.
        const NO_MIN: &[(&str, &str)] = &[
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ];
        let e = Shard::from_slurm(env(NO_MIN)).unwrap_err();
        assert_eq!(e.key, "SLURM_ARRAY_TASK_ID");
        assert!(e.message.contains("out of range"), "{e}");
    }
}
