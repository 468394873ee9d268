//! MedSAM2's 3-D post-processing (`getLargestCC` of `medsam2_infer_3D_CT.py`): the
//! largest 3-D connected component of the union of the propagation passes. The passes
//! themselves are planned and run by the application core (`app::propagation`).

/// Keeps the largest 26-connected component of a binary volume
/// (`skimage.measure.label` with full connectivity, as MedSAM2's `getLargestCC`).
pub fn largest_connected_component(mask: &[u8], [depth, height, width]: [usize; 3]) -> Vec<u8> {
    let n = depth * height * width;
    let mut label = vec![0u32; n];
    let mut sizes = vec![0usize]; // label 0 = background
    let mut stack = Vec::new();
    for start in 0..n {
        if mask[start] == 0 || label[start] != 0 {
            continue;
        }
        let id = sizes.len() as u32;
        sizes.push(0);
        label[start] = id;
        stack.push(start);
        while let Some(v) = stack.pop() {
            sizes[id as usize] += 1;
            let (z, rem) = (v / (height * width), v % (height * width));
            let (y, x) = (rem / width, rem % width);
            for dz in -1i64..=1 {
                for dy in -1i64..=1 {
                    for dx in -1i64..=1 {
                        let (nz, ny, nx) = (z as i64 + dz, y as i64 + dy, x as i64 + dx);
                        if nz < 0
                            || ny < 0
                            || nx < 0
                            || nz >= depth as i64
                            || ny >= height as i64
                            || nx >= width as i64
                        {
                            continue;
                        }
                        let u = (nz as usize * height + ny as usize) * width + nx as usize;
                        if mask[u] != 0 && label[u] == 0 {
                            label[u] = id;
                            stack.push(u);
                        }
                    }
                }
            }
        }
    }
    let Some((best, _)) = sizes.iter().enumerate().skip(1).max_by_key(|(_, s)| **s) else {
        return vec![0; n];
    };
    label.iter().map(|&l| u8::from(l == best as u32)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_largest_diagonally_connected_blob() {
        // 2×3×3: a 3-voxel diagonal chain (26-connected) and a lone voxel.
        let mut m = vec![0u8; 18];
        m[0] = 1; // (0,0,0)
        m[9 + 4] = 1; // (1,1,1)
        m[8] = 1; // (0,2,2) touches (1,1,1) diagonally
        m[9 + 6] = 1; // (1,2,0) touches (1,1,1) diagonally in-plane
        m[2] = 1; // (0,0,2): touches nothing but (1,1,1)? (dz=1,dy=1,dx=-1) yes
        let out = largest_connected_component(&m, [2, 3, 3]);
        assert_eq!(out, m, "all five voxels are one 26-connected component");
        let mut two = vec![0u8; 27];
        two[0] = 1;
        two[26] = 1;
        two[25] = 1;
        let out = largest_connected_component(&two, [3, 3, 3]);
        assert_eq!(out.iter().filter(|&&v| v == 1).count(), 2);
        assert_eq!(out[0], 0);
        assert_eq!(largest_connected_component(&[0, 0], [1, 1, 2]), vec![0, 0]);
    }
}
